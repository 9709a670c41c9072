package http

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/meterop"
	"github.com/shopspring/decimal"
)

// opDoc is what the document says of a route beyond its summary: the
// body it decodes, the body it answers with, its query parameters. The
// bodies are zero values of the handler's own types, so the schemas are
// generated from what the handler really decodes and encodes.
type opDoc struct {
	in     any // request body, nil for none
	out    any // response body of the success status
	status int // success status (200 unless set)
	query  []param
	csv    bool // the success body is text/csv, not JSON
	// example is a request body the API accepts (every write has one;
	// TestOpenAPIWriteExamplesAreValid holds them to their schemas).
	example any
}

type param struct{ name, typ, desc string }

// q builds query parameters: name:type:description, type string|integer|boolean|number.
func q(specs ...string) []param {
	ps := make([]param, len(specs))
	for i, s := range specs {
		parts := strings.SplitN(s, ":", 3)
		ps[i] = param{parts[0], parts[1], parts[2]}
	}
	return ps
}

var (
	rangeParams = q("from:string:start, RFC 3339 (default 7 days before to)", "to:string:end, RFC 3339 (default now)")
	escoParam   = q("esco:string:only this ESCO's meters (a token limited to an ESCO always is)")
)

// opDocs documents every route by "METHOD path"; TestOpenAPIDocumentsEveryRoute
// fails for a route without one.
var opDocs = map[string]opDoc{
	"GET /api/v1/meters": {out: meterList{}, query: append(q("mode:string:active or passive", "health:string:healthy or unhealthy",
		"low_balance:number:balance under this amount (GBP)", "offline:boolean:only meters offline", "q:string:serial or name contains",
		"sort:string:name (default), serial, esco, balance, health, csq or last_online; a leading - descends",
		"limit:integer:1-1000 (default 100)", "offset:integer:rows to skip"), escoParam...)},
	"POST /api/v1/meters": {in: newMeterBody{}, out: flows.Meter{}, status: http.StatusCreated,
		example: map[string]any{"serial": "EML2137580826", "name": "Plot 12", "ip_address": "10.20.0.12", "esco": "DEMO", "hardware": "EMA1.w"}},
	"GET /api/v1/meters/{serial}": {out: meterResource{}},
	"PATCH /api/v1/meters/{serial}": {in: flows.MeterPatch{}, out: flows.Meter{},
		example: map[string]any{"name": "Plot 12a", "ip_address": "10.20.0.13"}},
	"GET /api/v1/meters/{serial}/balance":        {out: balanceHistory{}, query: append(rangeParams, q("bucket:string:raw (default), hour or day")...)},
	"GET /api/v1/meters/{serial}/events":         {out: eventList{}},
	"GET /api/v1/meters/{serial}/signal":         {out: signalHistory{}, query: rangeParams},
	"GET /api/v1/meters/{serial}/tokens":         {out: topupList{}, query: q("days:integer:the last days of top-ups, 1-3660 (default 90)", "limit:integer:1-1000 (default 100)")},
	"GET /api/v1/meters/{serial}/commands":       {out: commandList{}, query: q("limit:integer:1-1000 (default 100)")},
	"GET /api/v1/meters/{serial}/audit":          {out: auditList{}, query: q("limit:integer:1-1000 (default 100)")},
	"GET /api/v1/meters/{serial}/intervals":      {out: intervalSeries{}, query: q("from:string:RFC 3339 or YYYY-MM-DD", "to:string:RFC 3339 or YYYY-MM-DD (a day: its end)", "bucket:string:hh (default) or day")},
	"GET /api/v1/meters/{serial}/intervals.csv":  {csv: true, query: q("day:string:YYYY-MM-DD (default yesterday, UTC)", "element:string:A or B (required on twin-element meters)")},
	"GET /api/v1/fleet":                          {out: fleetView{}, query: escoParam},
	"GET /api/v1/meters/{serial}/tariffs":        {out: meterTariffs{}},
	"PUT /api/v1/meters/{serial}/tariffs/future": {in: flows.Tariff{}, out: tariffAccepted{}, status: http.StatusAccepted, example: exampleTariff},
	"GET /api/v1/tariff-requests/{id}":           {out: flows.TariffRequest{}},
	"POST /api/v1/meters/{serial}/tokens": {in: tokenBody{}, out: topupAccepted{}, status: http.StatusAccepted,
		example: map[string]any{"token": "12345678901234567890", "amount": "10.00"}},
	"GET /api/v1/topups/{id}":           {out: flows.Topup{}},
	"POST /api/v1/meters/{serial}/sync": {out: syncQueued{}, status: http.StatusAccepted},
	"POST /api/v1/meters/{serial}/commands": {in: commandBody{}, out: flows.MeterCommand{}, status: http.StatusAccepted,
		example: map[string]any{"kind": "prepay_enabled", "value": "on"}},
	"GET /api/v1/commands/{id}": {out: flows.MeterCommand{}},
	"POST /api/v1/rollouts": {in: rolloutBody{}, out: flows.Rollout{}, status: http.StatusAccepted,
		example: map[string]any{"tariff": exampleTariff, "esco": "DEMO", "rate_per_minute": 60}},
	"GET /api/v1/rollouts/{id}":                   {out: flows.Rollout{}},
	"GET /api/v1/views/low-balance":               {out: lowBalanceView{}, query: append(q("threshold:number:GBP (default 5.00)"), escoParam...)},
	"GET /api/v1/reports/self-disconnections":     {out: flows.SelfDisconnectionReport{}, query: append(q("from:string:RFC 3339 or YYYY-MM-DD (default 30 days before to)", "to:string:RFC 3339 or YYYY-MM-DD, a day meaning its end (default today's end, UTC)"), escoParam...)},
	"GET /api/v1/reports/self-disconnections.csv": {csv: true, query: append(q("from:string:RFC 3339 or YYYY-MM-DD (default 30 days before to)", "to:string:RFC 3339 or YYYY-MM-DD, a day meaning its end (default today's end, UTC)"), escoParam...)},
	"GET /api/v1/alert-rules":                     {out: alertRulesView{}, query: escoParam},
	"POST /api/v1/alert-rules": {in: flows.NewAlertRule{}, out: flows.AlertRule{}, status: http.StatusCreated,
		example: map[string]any{"name": "Under £5", "kind": "low_balance", "threshold": "5.00", "webhook_url": "https://esco.example/hooks/flows", "webhook_secret": "a-long-shared-secret"}},
	"PATCH /api/v1/alert-rules/{id}":       {in: alertRulePatch{}, out: flows.AlertRule{}, example: map[string]any{"enabled": false}},
	"GET /api/v1/alerts":                   {out: alertsView{}, query: append(q("state:string:firing (default) or all", "limit:integer:1 to 1000 (default 100)"), escoParam...)},
	"POST /api/v1/alerts/{id}/acknowledge": {out: flows.Alert{}},
	"GET /api/v1/alerts/{id}/deliveries":   {out: alertDeliveriesView{}},
	"GET /api/v1/views/losing-supply":      {out: losingSupplyView{}, query: append(q("hours:integer:forecast horizon, 1 to 2208 (default 48)"), escoParam...)},
	"GET /api/v1/views/offline":            {out: offlineView{}, query: append(q("scope:string:recent (3-24 h, default) or all"), escoParam...)},
	"GET /api/v1/views/clock-drift":        {out: clockDriftView{}, query: escoParam},
}

// exampleTariff is the seed's tariff JSON, as a future tariff's body.
var exampleTariff = map[string]any{"standing_charge": "0.5868", "unit_rate_element_a": "0.2843", "unit_rate_element_b": "0.15",
	"prepayment_ecredit_availability": "10.00", "prepayment_debt_recovery_rate": "0.25", "prepayment_emergency_credit": "15.00",
	"activation_datetime": "2027-01-01T00:00:00Z"}

// enums are the values of the string types the API carries.
var enums = map[reflect.Type][]string{
	reflect.TypeFor[flows.Mode]():   {string(flows.ModeActive), string(flows.ModePassive)},
	reflect.TypeFor[flows.Health](): {string(flows.HealthHealthy), string(flows.HealthUnhealthy)},
	reflect.TypeFor[flows.RequestStatus](): {string(flows.RequestPending), string(flows.RequestSending), string(flows.RequestSent),
		string(flows.RequestVerified), string(flows.RequestActive), string(flows.RequestFailed), string(flows.RequestSuperseded)},
	reflect.TypeFor[flows.TopupStatus](): {string(flows.TopupWaiting), string(flows.TopupCompleted), string(flows.TopupFailed)},
	reflect.TypeFor[flows.Bucket]():      {string(flows.BucketRaw), string(flows.BucketHour), string(flows.BucketDay), string(flows.BucketHalfHour)},
}

// descriptions say what a schema alone cannot.
var descriptions = map[reflect.Type]string{
	reflect.TypeFor[commandBody](): "kind and the value it takes: clock takes no value (the meter is set to the time of the push); " +
		"prepay_enabled and daylight_savings_correction take on or off; backlight and load_switch a setting name.",
	reflect.TypeFor[Problem](): "An RFC 9457 problem: code is stable (" + strings.Join(problemCodes(), ", ") +
		"); field names the input that was wrong (a body field, a query parameter).",
	reflect.TypeFor[tokenBody](): "token: 20 digits; amount: GBP, optional, a decimal string; source: payment (default), gift, solar_credit or adjustment.",
}

// operationID names an operation for generated clients, from its method
// and path: GET /api/v1/meters/{serial}/balance is getMeterBalance, POST
// /api/v1/meters/{serial}/tokens postMeterTokens, GET /api/v1/meters
// getMeters, GET /api/v1/reports/self-disconnections.csv
// getReportsSelfDisconnectionsCsv. Unique because "METHOD path" is.
func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	segs := strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/")
	for i, seg := range segs {
		if strings.HasPrefix(seg, "{") {
			continue
		}
		// A collection followed by its item's id names the item ("meters"
		// then {serial}: Meter).
		if i+1 < len(segs) && strings.HasPrefix(segs[i+1], "{") {
			seg = strings.TrimSuffix(seg, "s")
		}
		for _, w := range strings.FieldsFunc(seg, func(r rune) bool { return r == '-' || r == '.' || r == '_' }) {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// openAPIDocument builds the document from the route table the server
// mounts, so every route is in it.
func openAPIDocument(routes []route) map[string]any {
	g := &schemaGen{defs: map[string]any{}}
	paths := map[string]map[string]any{}
	for _, rt := range routes {
		d := opDocs[rt.method+" "+rt.path]
		status := d.status
		if status == 0 {
			status = http.StatusOK
		}
		ok := map[string]any{"description": http.StatusText(status)}
		switch {
		case d.csv:
			ok["content"] = map[string]any{"text/csv": map[string]any{"schema": map[string]string{"type": "string"}}}
		case d.out != nil:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.of(reflect.TypeOf(d.out))}}
		}
		problem := map[string]any{"$ref": "#/components/responses/Problem"}
		responses := map[string]any{strconv.Itoa(status): ok}
		// Every error status an operation can answer (problem.go's codes;
		// 413 only where there is a body to be too large, 405 is a method
		// the path has no operation for).
		for _, code := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
			http.StatusConflict, http.StatusInternalServerError, http.StatusServiceUnavailable} {
			responses[strconv.Itoa(code)] = problem
		}
		if d.in != nil {
			responses[strconv.Itoa(http.StatusRequestEntityTooLarge)] = problem
		}
		op := map[string]any{
			"operationId":  operationID(rt.method, rt.path),
			"summary":      rt.summary,
			"description":  "Role: " + string(rt.role) + " or above. A token limited to an ESCO sees only that ESCO's meters.",
			"security":     []map[string][]string{{"bearer": {}}},
			"x-flows-role": string(rt.role),
			"responses":    responses,
		}
		var params []map[string]any
		for _, seg := range strings.Split(rt.path, "/") {
			if strings.HasPrefix(seg, "{") {
				params = append(params, map[string]any{"name": strings.Trim(seg, "{}"), "in": "path", "required": true, "schema": map[string]string{"type": "string"}})
			}
		}
		for _, p := range d.query {
			params = append(params, map[string]any{"name": p.name, "in": "query", "description": p.desc, "schema": map[string]string{"type": p.typ}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if d.in != nil {
			in := &schemaGen{defs: g.defs, in: true}
			body := map[string]any{"schema": in.of(reflect.TypeOf(d.in))}
			if d.example != nil {
				body["example"] = d.example
			}
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": body}}
		}
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		paths[rt.path][strings.ToLower(rt.method)] = op
	}
	g.of(reflect.TypeFor[Problem]()) // components/schemas/Problem, from the type writeError encodes
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]string{"title": "Flows API", "version": "1"},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         g.defs,
			"securitySchemes": map[string]any{"bearer": map[string]string{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
			"responses": map[string]any{"Problem": map[string]any{"description": "RFC 9457 problem with a stable code and the offending field",
				"content": map[string]any{"application/problem+json": map[string]any{"schema": map[string]string{"$ref": "#/components/schemas/Problem"}}}}},
		},
	}
}

// nullable is s that also takes null, as OpenAPI 3.1 (JSON Schema) says
// it: a type list with "null" (and null among an enum's values), or
// anyOf with null for a reference.
func nullable(s map[string]any) map[string]any {
	if _, ref := s["$ref"]; ref {
		return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
	}
	c := map[string]any{}
	for k, v := range s {
		c[k] = v
	}
	switch t := s["type"].(type) {
	case string:
		c["type"] = []string{t, "null"}
	case []string:
		c["type"] = append(append([]string{}, t...), "null")
	}
	if e, ok := s["enum"].([]string); ok {
		c["enum"] = append(append([]any{}, anySlice(e)...), nil)
	}
	return c
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// problemCodes are the error codes a problem carries, sorted.
func problemCodes() []string {
	out := make([]string, 0, len(httpStatus))
	for c := range httpStatus {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// schemaGen turns Go types into OpenAPI 3.1 schemas as encoding/json
// encodes them: named structs become components, pointers nullable,
// omitempty fields optional, decimals strings (money is never a float).
// With in set it describes request bodies: components named ...Input,
// required only what requiredIn names (a body's other fields have defaults).
type schemaGen struct {
	defs map[string]any
	in   bool
}

// requiredIn are the fields a request body must have.
var requiredIn = map[reflect.Type][]string{
	reflect.TypeFor[newMeterBody](): {"serial"},
	reflect.TypeFor[tokenBody]():    {"token"},
	reflect.TypeFor[commandBody]():  {"kind"},
	reflect.TypeFor[rolloutBody]():  {"tariff"},
	reflect.TypeFor[flows.Tariff](): {"activation_datetime"},
}

var (
	timeType    = reflect.TypeFor[time.Time]()
	decimalType = reflect.TypeFor[decimal.Decimal]()
	addrType    = reflect.TypeFor[netip.Addr]()
	rawType     = reflect.TypeFor[json.RawMessage]()
)

func (g *schemaGen) of(t reflect.Type) map[string]any {
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case decimalType:
		s := map[string]any{"type": "string", "format": "decimal", "pattern": `^-?[0-9]+(\.[0-9]+)?$`, "example": "12.34",
			"description": "a decimal amount as a string: money is never a float"}
		if g.in {
			s["type"] = []string{"string", "number"}
			s["description"] = "a decimal amount; a string keeps every digit (a JSON number is accepted too)"
		}
		return s
	case addrType:
		return map[string]any{"type": "string", "format": "ipv4"}
	case rawType:
		return map[string]any{"description": "any JSON value"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return nullable(g.of(t.Elem()))
	case reflect.String:
		s := map[string]any{"type": "string"}
		if e, ok := enums[t]; ok {
			s["enum"] = e
		}
		return s
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.of(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.of(t.Elem())}
	case reflect.Struct:
		if t.Name() == "" {
			return g.object(t)
		}
		name := strings.ToUpper(t.Name()[:1]) + t.Name()[1:] // meterList: MeterList
		if g.in {
			name += "Input"
		}
		if _, done := g.defs[name]; !done {
			g.defs[name] = map[string]any{} // a placeholder against recursion
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{"description": "any JSON value"}
}

// object is a struct's schema: its fields, and its embedded structs'
// fields flattened as encoding/json does.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	g.fields(t, props, &required)
	if g.in {
		required = requiredIn[t]
	}
	// No field but these: request bodies are decoded strictly, and answers
	// carry only their type's fields (an undeclared field fails the API
	// tests' check of every exchange).
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	if d, ok := descriptions[t]; ok {
		s["description"] = d
	}
	if t == reflect.TypeFor[commandBody]() {
		s["oneOf"] = commandVariants()
	}
	return s
}

func (g *schemaGen) fields(t reflect.Type, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				g.fields(ft, props, required)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.of(f.Type)
		if !strings.Contains(opts, "omitempty") {
			*required = append(*required, name)
		}
	}
}

// commandVariants are a command body's kinds, each with the values it takes.
func commandVariants() []any {
	var vs []any
	for _, k := range meterop.CommandKinds {
		vs = append(vs, map[string]any{"properties": map[string]any{
			"kind":  map[string]any{"type": "string", "enum": []string{string(k)}},
			"value": map[string]any{"type": "string", "enum": meterop.CommandValues(k)},
		}})
	}
	return vs
}
