package mediator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/meterconn"
	"google.golang.org/grpc/metadata"
)

// Past one mediator, meters are sharded across several (flows serve
// --mediator A,B): each meter always goes through the same one, chosen by
// its serial, so the one mediator that talks to it keeps its minimum gap
// and orders its requests. Adding or removing a mediator moves meters
// between them, so change the list with the engines stopped, or accept
// one period in which a moved meter may be read by its old and new
// mediator (each gap-correct on its own).

// Shards is a set of mediators, each meter served by one. It implements
// meterop.Meters and syncer.Meters for a sync engine and a command pusher:
// unlike a bare Client (the emop CLI's: an operator at work), it tells the
// mediator which calls are scheduled work, so an operator's keep their
// place ahead of them.
type Shards struct {
	clients []*Client
}

// DialShards connects to every mediator of addrs (HOST:PORT each); tlsCfg
// nil means plaintext.
func DialShards(addrs []string, tlsCfg *tls.Config) (*Shards, error) {
	if len(addrs) == 0 {
		return nil, errors.New("no mediator address")
	}
	s := &Shards{}
	seen := map[string]bool{}
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if a == "" {
			s.Close()
			return nil, errors.New("an empty mediator address in the list")
		}
		if seen[a] {
			s.Close()
			return nil, fmt.Errorf("mediator %s is listed twice", a)
		}
		seen[a] = true
		c, err := Dial(a, tlsCfg)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("mediator %s: %w", a, err)
		}
		s.clients = append(s.clients, c)
	}
	return s, nil
}

// Close closes every connection.
func (s *Shards) Close() error {
	var errs []error
	for _, c := range s.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Shard returns the index, in the list given to DialShards, of the
// mediator that serves serial: FNV-1a of the serial, modulo their number.
func (s *Shards) Shard(serial string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(serial))
	return int(h.Sum32() % uint32(len(s.clients)))
}

func (s *Shards) of(t meterconn.Target) *Client { return s.clients[s.Shard(t.Serial)] }

// Read reads one object through the meter's mediator.
func (s *Shards) Read(ctx context.Context, t meterconn.Target, id emop.ObjectID) ([]byte, error) {
	return s.of(t).Read(withLease(withPriority(ctx)), t, id)
}

// Write writes one object through the meter's mediator.
func (s *Shards) Write(ctx context.Context, t meterconn.Target, id emop.ObjectID, payload []byte) error {
	return s.of(t).Write(withLease(withPriority(ctx)), t, id, payload)
}

// Raw sends a data field through the meter's mediator.
func (s *Shards) Raw(ctx context.Context, t meterconn.Target, data []byte) ([]byte, error) {
	return s.of(t).Raw(withLease(withPriority(ctx)), t, data)
}

// priorityKey is the gRPC metadata a Flows client sends with scheduled
// work ("scheduled"). The mediator gives every other call the meter's next
// turn — the reference's scripts and the emop CLI are operators at work —
// so a sync engine that talks to meters through mediators says which of
// its calls may wait: a client can only lower its own priority with it.
const priorityKey = "flows-priority"

// withPriority marks an outgoing call as scheduled work unless ctx is an
// operator's (meterconn.Operator).
func withPriority(ctx context.Context) context.Context {
	if meterconn.IsOperator(ctx) {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, priorityKey, "scheduled")
}

// callerPriority returns ctx marked as an operator's request unless the
// caller said its call is scheduled work.
func callerPriority(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get(priorityKey) {
		if v == "scheduled" {
			return ctx
		}
	}
	return meterconn.Operator(ctx)
}
