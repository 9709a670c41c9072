package http_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	flowshttp "github.com/flows-energy/flows/http"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"
)

// The API document is checked by an independent validator
// (pb33f/libopenapi-validator, which knows OpenAPI 3.1): the document
// against the OpenAPI 3.1 schema, and every request the API tests make
// that the API accepts, and every answer it gives, against the document.
// An undocumented field, parameter or status fails the test that met it.

var docCheck struct {
	once sync.Once
	mu   sync.Mutex // the validator is used from parallel tests
	v    validator.Validator
	err  error
}

// documentValidator loads the document from a running server, once.
func documentValidator(base string) (validator.Validator, error) {
	docCheck.once.Do(func() {
		resp, err := http.Get(base + "/openapi.json")
		if err != nil {
			docCheck.err = err
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			docCheck.err = err
			return
		}
		doc, err := libopenapi.NewDocument(body)
		if err != nil {
			docCheck.err = fmt.Errorf("the API document does not parse: %w", err)
			return
		}
		v, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			docCheck.err = fmt.Errorf("the API document does not build: %v", errs)
			return
		}
		docCheck.v = v
	})
	return docCheck.v, docCheck.err
}

// documentCheck is the http package tests' HTTP transport (TestMain
// installs it as http.DefaultTransport): every exchange with an API path
// (/api/…) that any test makes, through a helper or by hand, is held to
// the document of the server it went to, and each mismatch is kept for
// that server's test to report (see reportMismatches).
type documentCheck struct {
	next http.RoundTripper

	mu    sync.Mutex
	found map[string][]string // server base URL → mismatches not yet reported
}

func (d *documentCheck) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(req.URL.Path, "/api/") {
		return d.next.RoundTrip(req)
	}
	var sent []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		sent = b
		req.Body = io.NopCloser(bytes.NewReader(sent))
	}
	resp, err := d.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(got))
	base := req.URL.Scheme + "://" + req.URL.Host
	path := req.URL.RequestURI()
	for _, m := range exchangeMismatches(base, req.Method, path, sent, req.Header, resp, got) {
		d.mu.Lock()
		if d.found == nil {
			d.found = map[string][]string{}
		}
		d.found[base] = append(d.found[base], m)
		d.mu.Unlock()
	}
	return resp, nil
}

// take returns and forgets the mismatches found for base ("" for all).
func (d *documentCheck) take(base string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for b, ms := range d.found {
		if base == "" || b == base {
			out = append(out, ms...)
			delete(d.found, b)
		}
	}
	return out
}

// apiTraffic is the installed documentCheck (nil while benchmarking: a
// benchmark measures the API, not the validator).
var apiTraffic *documentCheck

// reportMismatches fails t, when it ends, with every exchange with the
// server at base that did not match the API document.
func reportMismatches(t testing.TB, base string) {
	t.Cleanup(func() {
		if apiTraffic == nil {
			return
		}
		for _, m := range apiTraffic.take(base) {
			t.Error(m)
		}
	})
}

// exchangeMismatches validates one request and its answer against the
// document. A request the API refused (4xx) was meant to be wrong, so only
// its answer is checked.
func exchangeMismatches(base, method, path string, reqBody []byte, reqHeader http.Header, resp *http.Response, respBody []byte) []string {
	v, err := documentValidator(base)
	if err != nil {
		return []string{err.Error()}
	}
	req, _ := http.NewRequest(method, base+path, bytes.NewReader(reqBody))
	req.Header = reqHeader.Clone()
	r := &http.Response{StatusCode: resp.StatusCode, Header: resp.Header.Clone(), Body: io.NopCloser(bytes.NewReader(respBody)), Request: req}
	docCheck.mu.Lock()
	defer docCheck.mu.Unlock()
	var errs []*verrors.ValidationError
	if resp.StatusCode < 400 {
		_, errs = v.ValidateHttpRequest(req)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	_, rerrs := v.ValidateHttpResponse(req, r)
	var out []string
	for _, e := range append(errs, rerrs...) {
		if (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed) && e.ValidationType == "path" {
			continue // a path or method the API has not (a test asking for one on purpose): its 404 or 405 is the answer
		}
		out = append(out, fmt.Sprintf("%s %s → %d does not match the API document: %s", method, path, resp.StatusCode, describe(e)))
	}
	return out
}

func describe(e *verrors.ValidationError) string {
	parts := []string{e.Message}
	if e.Reason != "" {
		parts = append(parts, e.Reason)
	}
	for _, s := range e.SchemaValidationErrors {
		parts = append(parts, s.Reason+" at "+s.FieldPath)
	}
	return strings.Join(parts, "; ")
}

// The document is valid OpenAPI 3.1 by the specification's own schema.
func TestOpenAPIDocumentIsValid31(t *testing.T) {
	a := newAPI(t)
	v, err := documentValidator(a.base)
	if err != nil {
		t.Fatal(err)
	}
	docCheck.mu.Lock()
	defer docCheck.mu.Unlock()
	if ok, errs := v.ValidateDocument(); !ok {
		for _, e := range errs {
			t.Errorf("the API document is not valid OpenAPI 3.1: %s", describe(e))
		}
	}
}

// Every write in the document carries an example body, and the example is
// valid by the operation's own schema.
func TestOpenAPIWriteExamplesAreValid(t *testing.T) {
	a := newAPI(t)
	v, err := documentValidator(a.base)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(a.base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody *struct {
				Content map[string]struct {
					Example any `json:"example"`
				} `json:"content"`
			} `json:"requestBody"`
		} `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	writes := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if op.RequestBody == nil {
				continue
			}
			writes++
			ex := op.RequestBody.Content["application/json"].Example
			if ex == nil {
				t.Errorf("%s %s has no example body", strings.ToUpper(method), path)
				continue
			}
			body, _ := json.Marshal(ex)
			concrete := strings.NewReplacer("{serial}", "EML2137580826", "{id}", "0b7e2a52-7d44-4f4e-9a55-3c1b2f7f1a10").Replace(path)
			req, _ := http.NewRequest(strings.ToUpper(method), a.base+concrete, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token(t, flowshttp.RoleAdmin, ""))
			docCheck.mu.Lock()
			_, errs := v.ValidateHttpRequest(req)
			docCheck.mu.Unlock()
			for _, e := range errs {
				t.Errorf("the example of %s %s is not valid by its schema: %s", strings.ToUpper(method), path, describe(e))
			}
		}
	}
	if writes < 6 {
		t.Errorf("%d writes in the document, want the API's 6 or more", writes)
	}
}

// The check holds exchanges made by hand too: a server answering an API
// path with a status the document does not give is caught, though the
// test that asked never looked.
func TestHandMadeExchangesAreHeldToTheDocument(t *testing.T) {
	if apiTraffic == nil {
		t.Fatal("no documentCheck installed")
	}
	a := newAPI(t)
	if _, err := documentValidator(a.base); err != nil {
		t.Fatal(err)
	}
	odd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte(`{"meters": "not a list"}`))
	}))
	defer odd.Close()
	resp, err := http.Get(odd.URL + "/api/v1/meters")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	found := apiTraffic.take(odd.URL)
	if len(found) == 0 || !strings.Contains(strings.Join(found, "\n"), "GET /api/v1/meters → 418") {
		t.Errorf("an undocumented 418 went unnoticed: %q", found)
	}
}
