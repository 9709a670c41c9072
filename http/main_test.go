package http_test

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/flows-energy/flows/internal/pgtest"
)

// TestMain holds every API exchange the tests make to the API document
// (documentCheck); a mismatch no test reported (a server started without
// reportMismatches) fails the run here.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		apiTraffic = &documentCheck{next: http.DefaultTransport}
		http.DefaultTransport = apiTraffic
	}
	code := pgtest.Run(m)
	if apiTraffic != nil {
		if left := apiTraffic.take(""); len(left) > 0 {
			for _, e := range left {
				fmt.Fprintln(os.Stderr, "FAIL:", e)
			}
			code = 1
		}
	}
	os.Exit(code)
}
