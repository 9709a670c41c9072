// Command flows is the Flows head-end: the demo, the server, migrations,
// the meter simulator and administrative commands. This package only parses
// configuration and wires the parts together.
package main

import (
	"context"
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
	}
	root.AddCommand(newDemoCmd(), newServeCmd(), newMigrateCmd(), newSimCmd(), newMeterCmd(), newAuthCmd(), newBenchCmd(), newCertsCmd(), newReplicaCmd(), newExportCmd(), newDBCmd())
	return root
}

func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
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
