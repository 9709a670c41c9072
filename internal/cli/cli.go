// Package cli holds the command-line conventions both of Flows' binaries
// follow, so that flows and emop fail the same way:
//
//   - a usage error (a wrong argument count, an unknown flag or command, a
//     missing required flag, a flag value that does not parse) prints what
//     was wrong, the command's usage line and where to read more, and exits 2;
//   - an unknown command names the nearest commands ("did you mean");
//   - a failure of the work itself prints a message and exits 1 (the caller
//     decides the message and may choose another code);
//   - a command group run without a subcommand prints its help and exits 0.
//
// cobra reports all of its own errors as plain errors, indistinguishable
// from the work's; Prepare tells them apart by marking every error a
// command's RunE returns, so whatever arrives unmarked came from cobra.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/flows-energy/flows"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ExitUsage is the exit status of a usage error, as in the shells' and
// Go's own tools' convention; ExitFailure is that of a failed command.
const (
	ExitUsage   = 2
	ExitFailure = 1
)

// UsageError is a command line that cannot be run as written.
type UsageError struct {
	Cmd     *cobra.Command
	Message string
}

func (e *UsageError) Error() string { return e.Message }

// Usagef returns a usage error of cmd; a command's RunE returns it for a
// combination of flags cobra cannot check (one of --esco or --serial).
func Usagef(cmd *cobra.Command, format string, args ...any) error {
	return &UsageError{Cmd: cmd, Message: fmt.Sprintf(format, args...)}
}

// runError marks an error returned by a command's own RunE.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// Prepare applies the conventions to root and every command under it. Call
// it once the tree is complete, before Run.
func Prepare(root *cobra.Command) {
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	root.SetUsageTemplate(usageTemplate)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &UsageError{Cmd: c, Message: cobraMessage(err)}
	})
	walk(root, prepare)
}

func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		walk(sub, f)
	}
}

func prepare(c *cobra.Command) {
	c.SuggestionsMinimumDistance = 2
	if v := c.Args; v != nil {
		c.Args = func(c *cobra.Command, args []string) error {
			if err := v(c, args); err != nil {
				return &UsageError{Cmd: c, Message: argsMessage(c, args, err)}
			}
			return nil
		}
	}
	if run := c.RunE; run != nil {
		c.RunE = func(c *cobra.Command, args []string) error {
			err := run(c, args)
			if err == nil || errors.As(err, new(*UsageError)) {
				return err
			}
			return &runError{err}
		}
	}
}

func unknownCommand(c *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, c.CommandPath())
	if s := c.SuggestionsFor(name); len(s) > 0 {
		msg += "; did you mean " + strings.Join(quoteAll(s), " or ") + "?"
	}
	return &UsageError{Cmd: c, Message: msg}
}

func quoteAll(s []string) []string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return q
}

// Positional returns the argument names of c's usage line: the words after
// the command's name up to its first flag, optional ones in brackets.
func Positional(c *cobra.Command) []string {
	var names []string
	for _, w := range strings.Fields(c.Use)[1:] {
		if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "(") || strings.HasPrefix(w, "[-") || w == "[flags]" {
			break
		}
		names = append(names, w)
	}
	return names
}

// argsMessage says in the usage line's words what is wrong with args: the
// arguments missing, or those that are too many. cobra's own message
// ("accepts 1 arg(s), received 0") is the fallback.
func argsMessage(c *cobra.Command, args []string, err error) string {
	names := Positional(c)
	required := 0
	for _, n := range names {
		if !strings.HasPrefix(n, "[") {
			required++
		}
	}
	switch {
	case len(args) < required:
		return fmt.Sprintf("missing %s", strings.Join(names[len(args):required], " "))
	case len(args) > len(names) && len(names) == 0:
		return fmt.Sprintf("unexpected argument %q: %s takes none", strings.Join(args, " "), c.CommandPath())
	case len(args) > len(names):
		return fmt.Sprintf("too many arguments: %q after %s", strings.Join(args[len(names):], " "), strings.Join(names, " "))
	}
	return err.Error()
}

// Run executes root with ctx and reports its error on stderr: a usage
// error with the usage line (ExitUsage), anything else through explain,
// which returns the message and the exit status. It returns the status.
func Run(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer, explain func(error) (string, int)) int {
	// cobra runs a command group given an unknown subcommand ("flows meter
	// lst") as its help, exiting 0; that is a usage error.
	if c, rest, err := root.Find(args); err == nil && !c.Runnable() && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") && c.Name() != "help" {
		printUsage(stderr, root, c, unknownCommand(c, rest[0]).Error())
		return ExitUsage
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ue *UsageError
	var re *runError
	switch {
	case errors.As(err, &ue):
		if ue.Cmd != nil {
			cmd = ue.Cmd
		}
	case errors.As(err, &re):
		if msg, ok := commandLineError(cmd, re.err); ok {
			ue = &UsageError{Cmd: cmd, Message: msg}
			break
		}
		msg, code := explain(re.err)
		fmt.Fprintf(stderr, "%s: %s\n", root.Name(), msg)
		return code
	default:
		// cobra's own: a required flag not set, an unknown command at the root.
		ue = &UsageError{Cmd: cmd, Message: cobraMessage(err)}
	}
	printUsage(stderr, root, cmd, ue.Message)
	return ExitUsage
}

// commandLineError reports whether err is the work refusing what the
// command line gave — a field error naming one of cmd's flags ("--from-ts",
// or "health" refused by the store for --health) or one of its arguments
// ("action" for ACTION) — and says it in the command line's words: the
// command line is wrong, so it is a usage error like cobra's own.
func commandLineError(cmd *cobra.Command, err error) (string, bool) {
	var e *flows.Error
	if !errors.As(err, &e) || e.Code != flows.EINVALID || e.Field == "" {
		return "", false
	}
	if strings.HasPrefix(e.Field, "--") {
		return e.Error(), true
	}
	if cmd == nil {
		return "", false
	}
	f := cmd.Flags().Lookup(e.Field)
	if f == nil && len(e.Field) == 1 {
		f = cmd.Flags().ShorthandLookup(e.Field)
	}
	if f != nil {
		return "--" + f.Name + ": " + e.Message, true
	}
	for _, a := range Positional(cmd) {
		if name := strings.Trim(a, "[]."); strings.EqualFold(name, e.Field) {
			return name + ": " + e.Message, true
		}
	}
	return "", false
}

// cobraMessage rewrites cobra's wording where it reads like a program's
// rather than a person's.
func cobraMessage(err error) string {
	msg := strings.TrimSpace(err.Error())
	if rest, ok := strings.CutPrefix(msg, "required flag(s) "); ok {
		var flags []string
		for i, part := range strings.Split(rest, `"`) {
			if i%2 == 1 {
				flags = append(flags, "--"+part)
			}
		}
		return "missing required flag " + strings.Join(flags, ", ")
	}
	if head, _, ok := strings.Cut(msg, ": strconv.Parse"); ok {
		return head + ": not a number"
	}
	if head, _, ok := strings.Cut(msg, ": time: invalid duration"); ok {
		return head + ": not a duration (such as 30s, 5m or 1h30m)"
	}
	// "unknown command "x" for "flows"\n\nDid you mean this?\n\tdemo"
	if head, tail, ok := strings.Cut(msg, "\n\nDid you mean this?\n"); ok {
		return head + "; did you mean " + strings.Join(quoteAll(strings.Fields(tail)), " or ") + "?"
	}
	return msg
}

func printUsage(w io.Writer, root, cmd *cobra.Command, msg string) {
	fmt.Fprintf(w, "%s: %s\n", root.Name(), msg)
	if cmd == nil {
		return
	}
	if cmd.Runnable() {
		fmt.Fprintf(w, "Usage: %s\n", cmd.UseLine())
	} else {
		fmt.Fprintf(w, "Usage: %s COMMAND\n", cmd.CommandPath())
	}
	fmt.Fprintf(w, "Run '%s --help' for more.\n", cmd.CommandPath())
}

// Example formats a command's --help examples, one command line each.
func Example(lines ...string) string {
	return "  " + strings.Join(lines, "\n  ")
}

// Lint checks the --help of every command under a fresh tree from newRoot:
// each runnable command has an example, and each example line names that
// command, parses (flags, required flags, argument count) and so would run
// as written. It returns one line per problem.
func Lint(newRoot func() *cobra.Command) []string {
	var problems []string
	root := newRoot()
	Prepare(root)
	walk(root, func(c *cobra.Command) {
		if !c.Runnable() || c.Hidden || c.Name() == "help" || c.HasParent() && c.Parent().Name() == "completion" || c.Name() == "completion" {
			return
		}
		if strings.TrimSpace(c.Example) == "" {
			problems = append(problems, c.CommandPath()+": no example in --help")
			return
		}
		for _, line := range strings.Split(c.Example, "\n") {
			if err := lintExample(newRoot, c.CommandPath(), strings.TrimSpace(line)); err != nil {
				problems = append(problems, fmt.Sprintf("%s: example %q: %v", c.CommandPath(), strings.TrimSpace(line), err))
			}
		}
	})
	return problems
}

func lintExample(newRoot func() *cobra.Command, path, line string) error {
	words := strings.Fields(line)
	for len(words) > 0 && strings.Contains(words[0], "=") { // FLOWS_JWT_SECRET=... flows …
		words = words[1:]
	}
	root := newRoot()
	Prepare(root)
	if len(words) == 0 || words[0] != root.Name() {
		return fmt.Errorf("does not start with %q", root.Name())
	}
	c, rest, err := root.Find(words[1:])
	if err != nil {
		return err
	}
	if c.CommandPath() != path {
		return fmt.Errorf("runs %q", c.CommandPath())
	}
	if err := c.ParseFlags(rest); err != nil {
		return err
	}
	if err := c.ValidateArgs(c.Flags().Args()); err != nil {
		return err
	}
	if err := c.ValidateRequiredFlags(); err != nil {
		return err
	}
	return c.ValidateFlagGroups()
}

// CheckMention checks a command line as documentation names it (the
// README's `flows meter sync SERIAL`, `flows serve --meter-gap`,
// `emop --direct HOST:PORT -s SERIAL csq`): the command exists and every
// --flag it names is one of that command's. It does not need the line to
// be complete (arguments and flag values may be left out), only true.
// Flags may come before the command's name, as emop's do: a flag that
// takes a value, given without "=", takes the next word with it.
func CheckMention(newRoot func() *cobra.Command, line string) error {
	words := strings.Fields(line)
	for len(words) > 0 && strings.Contains(words[0], "=") {
		words = words[1:]
	}
	root := newRoot()
	Prepare(root)
	if len(words) == 0 || words[0] != root.Name() {
		return fmt.Errorf("does not start with %q", root.Name())
	}
	c := root
	args := false // past the command's name: words are its arguments
	for i := 1; i < len(words); i++ {
		w := words[i]
		if strings.HasPrefix(w, "-") && w != "-" && w != "--" {
			if f := lookupFlag(c, w); f != nil && f.NoOptDefVal == "" && !strings.Contains(w, "=") {
				i++ // its value
			}
			continue
		}
		if args {
			continue
		}
		next, rest, err := c.Find([]string{w})
		if err != nil || len(rest) > 0 || next == c {
			if !c.Runnable() {
				return fmt.Errorf("%q has no command %q", c.CommandPath(), w)
			}
			args = true
			continue
		}
		c = next
	}
	for _, w := range words[1:] {
		if !strings.HasPrefix(w, "--") || w == "--" {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(w, "--"), "=")
		c.InitDefaultHelpFlag()
		if c.Flags().Lookup(name) == nil && c.PersistentFlags().Lookup(name) == nil && c.InheritedFlags().Lookup(name) == nil {
			return fmt.Errorf("%q has no flag --%s", c.CommandPath(), name)
		}
	}
	return nil
}

// lookupFlag finds the flag a word (--name[=v], -x) names among c's own,
// persistent and inherited flags, or nil.
func lookupFlag(c *cobra.Command, w string) *pflag.Flag {
	c.InitDefaultHelpFlag()
	sets := []*pflag.FlagSet{c.Flags(), c.PersistentFlags(), c.InheritedFlags()}
	name, _, _ := strings.Cut(strings.TrimLeft(w, "-"), "=")
	for _, fs := range sets {
		if strings.HasPrefix(w, "--") {
			if f := fs.Lookup(name); f != nil {
				return f
			}
		} else if len(name) == 1 {
			if f := fs.ShorthandLookup(name); f != nil {
				return f
			}
		}
	}
	return nil
}

// Mentions returns the command lines of prog a document (a README)
// names, in backticks or at the start of a line in a fenced code block,
// for CheckMention. Lines with placeholders that stand for several
// (`init|server`, `…`, `[--flag]`, `<x>`) are left out.
func Mentions(doc, prog string) []string {
	q := regexp.QuoteMeta(prog)
	spans := regexp.MustCompile("`((?:go run \\./cmd/)?"+q+" [^`]*)`").FindAllStringSubmatch(doc, -1)
	inBlocks := regexp.MustCompile(`(?m)^\s*((?:go run \./cmd/)?`+q+` [^#\n]*)`).FindAllStringSubmatch(codeBlocks(doc), -1)
	var out []string
	for _, m := range append(spans, inBlocks...) {
		line := strings.TrimSpace(strings.TrimPrefix(m[1], "go run ./cmd/"))
		if strings.ContainsAny(line, "|…<>[]") || strings.Contains(line, "...") {
			continue
		}
		out = append(out, line)
	}
	return out
}

// codeBlocks returns a Markdown document's fenced code, one block after
// another.
func codeBlocks(s string) string {
	var out strings.Builder
	in := false
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			in = !in
			continue
		}
		if in {
			out.WriteString(l + "\n")
		}
	}
	return out.String()
}
