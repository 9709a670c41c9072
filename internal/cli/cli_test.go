package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flows-energy/flows"
	"github.com/spf13/cobra"
)

// tree is a small command tree shaped like flows': a group with a command
// taking a serial and a required flag, and one that fails.
func tree() *cobra.Command {
	root := &cobra.Command{Use: "flows"}
	meter := &cobra.Command{Use: "meter", Short: "meters"}
	var token string
	topup := &cobra.Command{Use: "topup SERIAL --token DIGITS", Args: cobra.ExactArgs(1), Example: Example("flows meter topup EML1 --token 1"),
		RunE: func(c *cobra.Command, a []string) error {
			if token == "bad" {
				return flows.FieldError("--token", "want 20 digits")
			}
			return nil
		}}
	topup.Flags().StringVar(&token, "token", "", "token")
	_ = topup.MarkFlagRequired("token")
	show := &cobra.Command{Use: "show SERIAL", Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, a []string) error {
		return flows.Errorf(flows.ENOTFOUND, "no meter %s", a[0])
	}}
	var health, query string
	list := &cobra.Command{Use: "list", Args: cobra.NoArgs, RunE: func(c *cobra.Command, a []string) error {
		// As a store refuses a filter: by the field's name, not the flag's.
		if health == "bogus" {
			return flows.FieldError("health", "%q is not healthy or unhealthy", health)
		}
		if query == "%" {
			return flows.FieldError("q", "not a search")
		}
		return nil
	}}
	list.Flags().StringVar(&health, "health", "", "health")
	list.Flags().StringVarP(&query, "query", "q", "", "search")
	AddOutput(list)
	// A value refused for an argument, by its name in the usage line.
	shift := &cobra.Command{Use: "shift [DIRECTION]", Example: Example("flows meter shift up"), Args: cobra.MaximumNArgs(1), RunE: func(c *cobra.Command, a []string) error {
		return flows.FieldError("direction", "%q is not up or down", a[0])
	}}
	meter.AddCommand(shift)
	meter.AddCommand(topup, show, list)
	root.AddCommand(meter)
	return root
}

func run(args ...string) (int, string) {
	var stderr bytes.Buffer
	root := tree()
	root.SetOut(new(bytes.Buffer))
	Prepare(root)
	code := Run(context.Background(), root, args, &stderr, func(err error) (string, int) {
		return flows.ErrorMessage(err), ExitFailure
	})
	return code, stderr.String()
}

func TestUsageErrorsExit2WithTheUsageLine(t *testing.T) {
	for _, c := range []struct {
		args  []string
		want  string // in the message line
		usage string // the usage line printed
	}{
		{[]string{"meter", "show"}, "flows: missing SERIAL", "Usage: flows meter show SERIAL"},
		{[]string{"meter", "show", "a", "b"}, `too many arguments: "b" after SERIAL`, "Usage: flows meter show SERIAL"},
		{[]string{"meter", "list", "x"}, `unexpected argument "x"`, "Usage: flows meter list"},
		{[]string{"meter", "topup", "EML1"}, "missing required flag --token", "Usage: flows meter topup SERIAL --token DIGITS"},
		{[]string{"meter", "topup", "EML1", "--token", "bad"}, "--token: want 20 digits", "Usage: flows meter topup"},
		{[]string{"meter", "list", "--bogus"}, "unknown flag: --bogus", "Usage: flows meter list"},
		{[]string{"meter", "list", "--output", "yaml"}, "want table or json", "Usage: flows meter list"},
		{[]string{"meter", "list", "--health", "bogus"}, `--health: "bogus" is not healthy or unhealthy`, "Usage: flows meter list"},
		{[]string{"meter", "list", "-q", "%"}, `--query: not a search`, "Usage: flows meter list"},
		{[]string{"meter", "shift", "sideways"}, `DIRECTION: "sideways" is not up or down`, "Usage: flows meter shift [DIRECTION]"},
		{[]string{"meter", "lst"}, `unknown command "lst" for "flows meter"; did you mean "list"?`, "Usage: flows meter COMMAND"},
		{[]string{"metr"}, `unknown command "metr" for "flows"; did you mean "meter"?`, "Usage: flows COMMAND"},
	} {
		code, out := run(c.args...)
		if code != ExitUsage || !strings.Contains(out, c.want) || !strings.Contains(out, c.usage) || !strings.Contains(out, "--help' for more") {
			t.Errorf("flows %s: exit %d\n%s\nwant exit 2, %q and %q", strings.Join(c.args, " "), code, out, c.want, c.usage)
		}
	}
}

func TestFailuresExit1WithTheirMessage(t *testing.T) {
	code, out := run("meter", "show", "EML9")
	if code != ExitFailure || out != "flows: no meter EML9\n" {
		t.Errorf("exit %d, %q; want 1 and the error's message alone", code, out)
	}
}

func TestAGroupWithoutASubcommandShowsItsHelp(t *testing.T) {
	if code, out := run("meter"); code != 0 || out != "" {
		t.Errorf("exit %d, stderr %q", code, out)
	}
	for _, args := range [][]string{{"--output", "json"}, {"-o", "json"}, {"--json"}} {
		if code, out := run(append([]string{"meter", "list"}, args...)...); code != 0 {
			t.Errorf("meter list %v: exit %d %s", args, code, out)
		}
	}
}

func TestLintFindsExamplesThatDoNotRun(t *testing.T) {
	bad := func() *cobra.Command {
		root := tree()
		for _, c := range root.Commands()[0].Commands() {
			switch c.Name() {
			case "topup":
				c.Example = Example("flows meter topup EML1") // the required --token missing
			case "list":
				c.Example = Example("flows meter list --format json")
			}
		}
		return root
	}
	got := strings.Join(Lint(bad), "\n")
	for _, want := range []string{"flows meter show: no example", `flows meter topup: example "flows meter topup EML1": required flag(s) "token" not set`, "flows meter list: example \"flows meter list --format json\": unknown flag: --format"} {
		if !strings.Contains(got, want) {
			t.Errorf("Lint:\n%s\nwant %q", got, want)
		}
	}
	if len(Lint(bad)) != 3 {
		t.Errorf("Lint found %d problems, want 3:\n%s", len(Lint(bad)), got)
	}
}

func TestProgressBar(t *testing.T) {
	if got := Bar("export", 5, 10, 3*time.Second); got != "export [===============               ]  50% 5/10 3s" {
		t.Errorf("half: %q", got)
	}
	if got := Bar("export", 12, 10, 0); !strings.Contains(got, "[==============================] 100%") {
		t.Errorf("over: %q", got)
	}
	// Not a terminal (a buffer, as when piped): nothing drawn.
	p := NewProgress(new(bytes.Buffer), "x", 3)
	p.Add(3)
	p.Done()
	if p.w != nil {
		t.Error("drawing to a pipe")
	}
}

// A documented command line is checked for its command and its flags,
// flags before the command's name included (emop's -s SERIAL): a value
// after a flag is not taken for a command, a wrong command or flag is
// named.
func TestCheckMention(t *testing.T) {
	withGlobal := func() *cobra.Command {
		root := tree()
		root.PersistentFlags().StringP("serial", "s", "", "meter")
		root.PersistentFlags().Bool("json", false, "json")
		return root
	}
	for line, want := range map[string]string{
		"flows meter topup EML1 --token 1":        "",
		"flows -s EML1 meter show EML1":           "",
		"flows --serial=EML1 --json meter list":   "",
		"flows --serial EML1 meter list --output": "",
		"flows meter lst":                         `"flows meter" has no command "lst"`,
		"flows -s meter list":                     `"flows" has no command "list"`,
		"flows meter topup EML1 --tokn 1":         `"flows meter topup" has no flag --tokn`,
		"emop csq":                                `does not start with "flows"`,
	} {
		switch err := CheckMention(withGlobal, line); {
		case want == "" && err != nil:
			t.Errorf("%s: %v, want it accepted", line, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want %q", line, err, want)
		}
	}
	if got := Mentions("Run `flows meter list`, or `flows init|server`.\n```\nflows meter show EML1 # one\n  emop csq\n```\n", "flows"); len(got) != 2 || got[0] != "flows meter list" || got[1] != "flows meter show EML1" {
		t.Errorf("Mentions = %q", got)
	}
}

// A usage lists subcommands in a column at most maxNamePadding wide: a
// longer name has its summary on the next line, in the column, rather
// than every summary pushed right of the longest name.
func TestUsageKeepsSummariesInANarrowColumn(t *testing.T) {
	root := &cobra.Command{Use: "tool"}
	root.AddCommand(&cobra.Command{Use: "short", Short: "a short one", Run: func(*cobra.Command, []string) {}},
		&cobra.Command{Use: "a_name_longer_than_the_column_of_names", Short: "a long one", Run: func(*cobra.Command, []string) {}})
	Prepare(root)
	var out strings.Builder
	root.SetOut(&out)
	if err := root.Usage(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\n  short" + strings.Repeat(" ", 26-5) + " a short one\n",
		"\n  a_name_longer_than_the_column_of_names\n" + strings.Repeat(" ", 2+26+1) + "a long one\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage:\n%s\nwant the lines:\n%s", out.String(), want)
		}
	}
}
