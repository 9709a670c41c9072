package mediator

import (
	"context"
	"crypto/tls"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/mediator/pb"
	"github.com/flows-energy/flows/meterconn"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// DefaultTimeout is a call's deadline when the caller sets none: above the
// transport's worst case (3 attempts × 20 s + backoff), unlike the
// reference's 75 s against 128 s of server retries.
const DefaultTimeout = 90 * time.Second

// Client talks to a mediator. It implements meterop.Meters, returning the
// same typed errors as the in-process transport (meterconn.ErrBusy,
// *emop.NakError, *meterconn.CommError), so callers need not care which
// they use. Only Target.Serial is used: the mediator knows the addresses.
type Client struct {
	conn *grpc.ClientConn
	med  pb.EmliteMediatorServiceClient
	info pb.InfoServiceClient
}

// Dial connects to a mediator at addr; tlsCfg nil means plaintext.
func Dial(addr string, tlsCfg *tls.Config) (*Client, error) {
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, med: pb.NewEmliteMediatorServiceClient(conn), info: pb.NewInfoServiceClient(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func withDefault(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// Read reads one object.
func (c *Client) Read(ctx context.Context, t meterconn.Target, id emop.ObjectID) ([]byte, error) {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	r, err := c.med.ReadElement(ctx, &pb.ReadElementRequest{Serial: t.Serial, ObjectId: int32(id)})
	if err != nil {
		return nil, fromStatus(err)
	}
	return r.GetResponse(), nil
}

// Write writes one object.
func (c *Client) Write(ctx context.Context, t meterconn.Target, id emop.ObjectID, payload []byte) error {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	_, err := c.med.WriteElement(ctx, &pb.WriteElementRequest{Serial: t.Serial, ObjectId: int32(id), Payload: payload})
	return fromStatus(err)
}

// Raw sends a data field and returns the response data field (format byte
// first, restored from the request: the mediator strips it).
func (c *Client) Raw(ctx context.Context, t meterconn.Target, data []byte) ([]byte, error) {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	r, err := c.med.SendRawMessage(ctx, &pb.SendRawMessageRequest{Serial: t.Serial, DataField: data})
	if err != nil {
		return nil, fromStatus(err)
	}
	return append([]byte{data[0]}, r.GetResponse()...), nil
}

// Info returns GetInfo's JSON for a meter.
func (c *Client) Info(ctx context.Context, serial string) (string, error) {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	r, err := c.info.GetInfo(ctx, &pb.GetInfoRequest{Serial: serial})
	if err != nil {
		return "", fromStatus(err)
	}
	return r.GetJsonData(), nil
}

// Meters returns GetMeters' JSON for an ESCO code.
func (c *Client) Meters(ctx context.Context, esco string) (string, error) {
	ctx, cancel := withDefault(ctx)
	defer cancel()
	r, err := c.info.GetMeters(ctx, &pb.GetMetersRequest{Esco: esco})
	if err != nil {
		return "", fromStatus(err)
	}
	return r.GetJsonMeters(), nil
}
