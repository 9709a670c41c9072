// Command flows is the Flows head-end: the demo, the server, migrations,
// the meter simulator and administrative commands. This package only parses
// configuration and wires the parts together.
package main

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	cli.Prepare(root)
	code := cli.Run(ctx, root, os.Args[1:], os.Stderr, explain)
	stop()
	os.Exit(code)
}

// explain turns a failed command's error into its message and exit status:
// the application error's message, with the detail of an internal one (an
// operator needs it and a CLI has no log to send it to), 3 for a feature
// not built.
func explain(err error) (string, int) {
	// Failures a user can act on, named as such rather than "internal".
	var pe *fs.PathError
	if flows.ErrorCode(err) == flows.EINTERNAL && errors.As(err, &pe) {
		return pe.Error(), cli.ExitFailure // "open X: no such file or directory"
	}
	msg := flows.ErrorMessage(err)
	switch flows.ErrorCode(err) {
	case flows.EINTERNAL:
		msg += "\n  detail: " + err.Error()
	case flows.ENOTIMPL:
		return msg, 3
	}
	return msg, cli.ExitFailure
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "flows",
		Short: "Head-end and meter management for prepayment electricity meters",
		// cobra runs only the nearest PersistentPreRunE: a command with
		// its own (flows bench) calls this one too.
		PersistentPreRunE: checkLogFlags,
	}
	root.PersistentFlags().StringVar(&logFlags.level, "log-level", "info", "debug, info, warn or error")
	root.PersistentFlags().StringVar(&logFlags.format, "log-format", "text", "text or json (one object a line, for a log collector)")
	root.AddCommand(newDemoCmd(), newServeCmd(), newMigrateCmd(), newSimCmd(), newMeterCmd(), newAuthCmd(), newBenchCmd(), newCertsCmd(), newReplicaCmd(), newExportCmd(), newDBCmd())
	return root
}

// logFlags are the root's --log-level and --log-format, which every
// command's logger follows.
var logFlags struct{ level, format string }

// logger is the process's logger on stderr, as --log-level (debug, info,
// warn, error) and --log-format (text, json) say; the flags are checked
// before any command runs (checkLogFlags).
func logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: logLevel(logFlags.level)}
	if logFlags.format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func logLevel(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s)) // checked by checkLogFlags
	return l
}

// checkLogFlags refuses a log level or format Flows does not know.
func checkLogFlags(*cobra.Command, []string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(logFlags.level)); err != nil {
		return flows.FieldError("--log-level", "%q is not debug, info, warn or error", logFlags.level)
	}
	if logFlags.format != "text" && logFlags.format != "json" {
		return flows.FieldError("--log-format", "%q is not text or json", logFlags.format)
	}
	return nil
}

// databaseURL returns --database-url or FLOWS_DATABASE_URL.
func databaseURL(cmd *cobra.Command) (string, error) {
	u, _ := cmd.Flags().GetString("database-url")
	if u == "" {
		u = os.Getenv("FLOWS_DATABASE_URL")
	}
	if u == "" {
		return "", flows.FieldError("--database-url", "required (or set FLOWS_DATABASE_URL)")
	}
	return u, nil
}

func addDatabaseFlag(cmd *cobra.Command) {
	cmd.Flags().String("database-url", "", "PostgreSQL URL (default $FLOWS_DATABASE_URL)")
}
