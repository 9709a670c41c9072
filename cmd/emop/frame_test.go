package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flows-energy/flows/internal/pgtest"
)

var emopBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "emop-bin-")
	if err != nil {
		panic(err)
	}
	emopBin = filepath.Join(dir, "emop")
	if out, err := exec.Command("go", "build", "-o", emopBin, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

func runEmop(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(emopBin, args...)
	// The route comes from each test's flags, never from the environment.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MEDIATOR_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func decode(t *testing.T, hexFrame string) map[string]any {
	t.Helper()
	out, stderr, err := runEmop(t, "frame", "decode", hexFrame)
	if err != nil {
		t.Fatalf("decode %s: %v %s", hexFrame, err, stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return m
}

func TestFrameDecode(t *testing.T) {
	m := decode(t, "7e11000000000021ae42050160010000c02f")
	for k, want := range map[string]any{
		"length": 17.0, "dest_type": 0.0, "dest_address": "000000", "src_type": 0.0, "src_address": "21ae42",
		"control": 5.0, "sequence": 5.0, "ack_nak": 0.0, "crc": "c02f", "crc_ok": true, "format": 1.0,
		"object_id": "600100", "object_name": "serial", "rw": 0.0, "payload_hex": "", "value": nil,
	} {
		if m[k] != want {
			t.Errorf("%s = %#v, want %#v", k, m[k], want)
		}
	}
	for _, c := range []struct {
		frame string
		want  any
	}{
		{"7e150021ae42001234560101ffc80200bc29edff4966", "-12.34500"},
		{"7e180021ae420012345601018008000018041c0d0509001faa", "2024-04-28T13:05:09Z"},
		{"7e150021ae420012345601010002010033303238ee04", "3_02_8"},
		{"7e210021ae4200123456010160010000454d4c32313337353830373631202020e887", "EML2137580761"},
		{"7e150021ae42001234560101ffff24000008bb2df175", "2024-04-24T00:00:00Z"},
	} {
		if got := decode(t, c.frame)["value"]; got != c.want {
			t.Errorf("%s: value %#v, want %#v", c.frame, got, c.want)
		}
	}
	csq := decode(t, "7e120021ae42001234560101fffd1d0030770e")["value"].(map[string]any)
	if csq["csq"] != 16.0 || csq["network_operator"] != 1.0 {
		t.Errorf("csq value %v", csq)
	}
	el := decode(t, "7e210021ae42001234560101fffffc0087d6120059000000e8030000020000008874")["value"].(map[string]any)
	if el["import_active"] != 1234567.0 || el["export_active"] != 89.0 {
		t.Errorf("element value %v", el)
	}
	nak := decode(t, "7e110021ae4200123456290180030900889e")
	if nak["ack_nak"] != 5.0 || nak["sequence"] != 1.0 || !strings.Contains(nak["ack_nak_meaning"].(string), "not recognised") {
		t.Errorf("NAK frame %v", nak)
	}
	bad := decode(t, "7e150021ae42001234560101ffc80200e0930400fe8c") // last CRC byte changed
	if bad["crc_ok"] != false || bad["crc"] != "fe8c" || bad["value"] != "3.00000" {
		t.Errorf("CRC mismatch decodes with crc_ok false: %v", bad)
	}
}

func TestFrameDecodeRejectsMalformed(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"7f11000000000021ae42050160010000c02f", "delimiter"},
		{"7e11000000000021ae42050160010000", "truncated"},
		{"7e05000000", "length"},
		{"7e11000000000021ae42050160010000c02f00", "follow the frame"},
		{"zz", "not hex"},
	} {
		_, stderr, err := runEmop(t, "frame", "decode", c.in)
		if err == nil || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "panic") {
			t.Errorf("%s: err %v stderr %q, want a failure mentioning %q", c.in, err, stderr, c.want)
		}
	}
}

func TestFrameEncode(t *testing.T) {
	out, _, err := runEmop(t, "frame", "encode", "--object", "serial", "--seq", "5")
	if err != nil || strings.TrimSpace(out) != "7e11000000000021ae42050160010000c02f" {
		t.Errorf("encode serial read = %q, %v; want the reference's frame", out, err)
	}
	out, _, err = runEmop(t, "frame", "encode", "--object", "fff839", "--write", "e21d0000")
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, strings.TrimSpace(out))
	if m["rw"] != 1.0 || m["object_name"] != "tariff_future_block_8_rate_1" || m["value"] != "0.07650" {
		t.Errorf("encoded write decodes to %v", m)
	}
	for _, args := range [][]string{{"--object", "nonsense"}, {"--object", "serial", "--seq", "9"}, {"--object", "serial", "--write", "xyz"}} {
		if _, _, err := runEmop(t, append([]string{"frame", "encode"}, args...)...); err == nil {
			t.Errorf("encode %v accepted", args)
		}
	}
}

// A command line that names no way to the meter, no meter, a malformed
// serial or one route too many is a usage error: exit 2, what was wrong
// and the usage line; an unreachable meter is a failure: exit 1.
func TestRouteAndSerialMistakesAreUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"csq", "EML2137580826"}, 2, "no meter route"},
		{[]string{"--mediator", "127.0.0.1:1", "csq"}, 2, "no meter: pass -s SERIAL"},
		{[]string{"--mediator", "127.0.0.1:1", "-s", "BAD", "csq"}, 2, `"BAD" is not a meter serial`},
		{[]string{"--mediator", "127.0.0.1:1", "--direct", "127.0.0.1:1", "csq", "EML2137580826"}, 2, "not both"},
		{[]string{"--direct", "127.0.0.1:1", "--serials", "EML2137580826,EML2137580827", "csq"}, 2, "--direct reaches one meter"},
		{[]string{"info", "EML2137580826"}, 2, "needs a mediator"},
		{[]string{"--direct", "127.0.0.1:1", "csq", "EML2137580826"}, 1, "Failed to connect to meter"},
	} {
		_, stderr, err := runEmop(t, c.args...)
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("emop %s: exit %d, %q; want exit %d naming %q", strings.Join(c.args, " "), code, stderr, c.code, c.want)
		}
		if c.code == 2 && !strings.Contains(stderr, "Usage: emop ") {
			t.Errorf("emop %s: no usage line in %q", strings.Join(c.args, " "), stderr)
		}
	}
}
