package mediator_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/mediator"
	"github.com/flows-energy/flows/meterconn"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec sends and receives bytes as they are, under the "proto" name,
// so a test can speak the reference interface from field numbers alone.
type rawCodec struct{}

type rawMsg struct{ b []byte }

func (rawCodec) Marshal(v any) ([]byte, error) { return v.(*rawMsg).b, nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	v.(*rawMsg).b = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func field(b []byte, num protowire.Number, v any) []byte {
	switch x := v.(type) {
	case string:
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendString(b, x)
	case []byte:
		b = protowire.AppendTag(b, num, protowire.BytesType)
		return protowire.AppendBytes(b, x)
	case int32:
		b = protowire.AppendTag(b, num, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(x))
	}
	panic("type")
}

// bytesField returns field num (length-delimited) of a message.
func bytesField(t *testing.T, b []byte, num protowire.Number) []byte {
	t.Helper()
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		b = b[l:]
		if typ != protowire.BytesType {
			_, l = protowire.ConsumeVarint(b)
			b = b[l:]
			continue
		}
		v, l := protowire.ConsumeBytes(b)
		if l < 0 {
			t.Fatal("bad message")
		}
		b = b[l:]
		if n == num {
			return v
		}
	}
	return nil
}

// A client that knows only the reference proto (package, service, method
// names and field numbers) calls all five methods.
func TestReferenceWireCompatibility(t *testing.T) {
	r := newRig(t, 3, "127.85", meterconn.Config{Attempts: 1}, nil)
	conn, err := grpc.NewClient(r.server.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	serial := r.fleet.Meters()[0].Spec.Serial
	call := func(method string, req []byte) []byte {
		t.Helper()
		var out rawMsg
		if err := conn.Invoke(ctx, "/simt_emlite.mediator.grpc."+method, &rawMsg{b: req}, &out); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		return out.b
	}
	// readElement(serial=1, objectId=2) → response=1: the serial object.
	resp := call("EmliteMediatorService/readElement", field(field(nil, 1, serial), 2, int32(emop.ObjSerial)))
	if got, _ := emop.DecodeString(bytesField(t, resp, 1)); got != serial {
		t.Errorf("readElement serial = %q, want %s", got, serial)
	}
	// writeElement(serial=1, objectId=2, payload=3): backlight on.
	call("EmliteMediatorService/writeElement", field(field(field(nil, 1, serial), 2, int32(emop.ObjBacklight)), 3, []byte{1}))
	resp = call("EmliteMediatorService/readElement", field(field(nil, 1, serial), 2, int32(emop.ObjBacklight)))
	if b := bytesField(t, resp, 1); len(b) != 1 || b[0] != 1 {
		t.Errorf("backlight after write = % x", b)
	}
	// sendRawMessage(serial=1, dataField=2) → response=1 without the format byte.
	resp = call("EmliteMediatorService/sendRawMessage", field(field(nil, 1, serial), 2, emop.ReadRequest(emop.ObjCSQ)))
	if b := bytesField(t, resp, 1); len(b) != 5 || b[0] != 0xFF || b[1] != 0xFD || b[2] != 0x1D {
		t.Errorf("sendRawMessage response % x: want object id fffd1d, rw, csq byte", b)
	}
	// InfoService.GetInfo(serial=1) → json_data=1; GetMeters(esco=1) → json_meters=1.
	if js := string(bytesField(t, call("InfoService/GetInfo", field(nil, 1, serial)), 1)); !strings.Contains(js, serial) {
		t.Errorf("GetInfo json: %s", js)
	}
	if js := string(bytesField(t, call("InfoService/GetMeters", field(nil, 1, "MED")), 1)); strings.Count(js, `"serial"`) != 3 {
		t.Errorf("GetMeters json: %s", js)
	}
}

// writeRogueClient makes a client certificate, signed by dir's CA, with an
// OU that is no role.
func writeRogueClient(t *testing.T, dir string) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(pair.Certificate[0])
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "rogue", OrganizationalUnit: []string{"superuser"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, pair.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	_ = os.WriteFile(filepath.Join(dir, "rogue.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "rogue-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
}

func TestMutualTLSRoles(t *testing.T) {
	dir := t.TempDir()
	if err := mediator.InitCA(dir, "test"); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"server", ""}, {"ops", "internal"}, {"partnerco", "partner"}, {"grafana", "readonly"}} {
		if err := mediator.Issue(dir, c[0], c[1], nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := mediator.Issue(dir, "bad", "superuser", nil); err == nil {
		t.Errorf("issued a certificate for an unknown role")
	}
	writeRogueClient(t, dir)
	stls, err := mediator.ServerTLS(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, 2, "127.86", meterconn.Config{Attempts: 1}, stls)
	serial := r.fleet.Meters()[0].Spec.Serial
	ctx := context.Background()
	client := func(name string) *mediator.Client {
		cert, key := "", ""
		if name != "" {
			cert, key = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		}
		ctls, err := mediator.ClientTLS(cert, key, filepath.Join(dir, "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return dial(t, r.server.Addr(), ctls)
	}
	type outcome struct{ read, write, info codes.Code }
	for name, want := range map[string]outcome{
		"ops":       {codes.OK, codes.OK, codes.OK},
		"partnerco": {codes.OK, codes.PermissionDenied, codes.OK},
		"grafana":   {codes.PermissionDenied, codes.PermissionDenied, codes.OK},
		"rogue":     {codes.PermissionDenied, codes.PermissionDenied, codes.PermissionDenied},
		"":          {codes.Unauthenticated, codes.Unauthenticated, codes.Unauthenticated},
	} {
		c := client(name)
		_, rerr := c.Read(ctx, meterconn.Target{Serial: serial}, emop.ObjCSQ)
		werr := c.Write(ctx, meterconn.Target{Serial: serial}, emop.ObjBacklight, []byte{0})
		_, ierr := c.Info(ctx, serial)
		got := outcome{grpcCode(rerr), grpcCode(werr), grpcCode(ierr)}
		if got != want {
			t.Errorf("client %q: read/write/info = %v, want %v (%v / %v / %v)", name, got, want, rerr, werr, ierr)
		}
	}
}

// grpcCode recovers the status code behind an error the client mapped.
func grpcCode(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Permission denied"):
		return codes.PermissionDenied
	case strings.Contains(msg, "Client certificate required"):
		return codes.Unauthenticated
	}
	return codes.Unknown
}
