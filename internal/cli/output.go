package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// Output is a list command's --output flag: "table" (the default, for a
// person) or "json" (for a script). The older --json is kept, hidden, for
// the scripts that use it.
type Output struct{ format string }

// AddOutput registers --output (and the hidden --json) on c.
func AddOutput(c *cobra.Command) *Output {
	o := &Output{format: "table"}
	c.Flags().VarP(o, "output", "o", "table or json")
	c.Flags().Var(jsonFlag{o}, "json", "same as --output json")
	c.Flags().Lookup("json").NoOptDefVal = "true"
	_ = c.Flags().MarkHidden("json")
	return o
}

// JSON reports whether the list is to be printed as JSON.
func (o *Output) JSON() bool { return o.format == "json" }

// String, Set and Type make Output a pflag.Value, so a wrong value is a
// usage error when the flags are parsed.
func (o *Output) String() string { return o.format }

// Set implements pflag.Value.
func (o *Output) Set(v string) error {
	if v != "table" && v != "json" {
		return fmt.Errorf("want table or json")
	}
	o.format = v
	return nil
}

// Type implements pflag.Value.
func (o *Output) Type() string { return "table|json" }

type jsonFlag struct{ o *Output }

func (j jsonFlag) String() string { return fmt.Sprint(j.o.JSON()) }
func (j jsonFlag) Type() string   { return "bool" }
func (j jsonFlag) Set(v string) error {
	switch v {
	case "true":
		j.o.format = "json"
	case "false":
		j.o.format = "table"
	default:
		return fmt.Errorf("want true or false")
	}
	return nil
}
