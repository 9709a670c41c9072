// Package flows holds the domain of the Flows head-end: meters, their
// reported state (shadows), registers, tariffs, balance history and the one
// application error type. It imports nothing but the standard library and
// the decimal type used for money; adapters (postgres, emop, mediator, http,
// sim) implement or use the interfaces declared here, and only cmd/ wires
// them together.
//
// Money is always decimal (GBP, at most 5 decimal places, as meters store
// GBP × 100 000 integers). Times are UTC; a meter's own clock convention is
// applied only at the EMOP boundary.
package flows
