// Command flows is the Flows head-end: the demo, the server, migrations,
// the meter simulator and administrative commands. This package only parses
// configuration and wires the parts together.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/flows-energy/flows"
	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "flows:", flows.ErrorMessage(err))
		if flows.ErrorCode(err) == flows.EINTERNAL {
			fmt.Fprintln(os.Stderr, "  detail:", err)
		}
		if flows.ErrorCode(err) == flows.ENOTIMPL {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "flows",
		Short:         "Head-end and meter management for prepayment electricity meters",
		SilenceUsage:  true,
		SilenceErrors: true,
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
