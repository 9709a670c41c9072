package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/flows-energy/flows/internal/cli"
	"github.com/spf13/cobra"
)

func newReplicaCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "replica", Short: "Replication of shadows to databases where the meters are passive twins"}
	var out *cli.Output
	status := &cobra.Command{
		Use:     "status",
		Example: cli.Example("flows replica status", "flows replica status --output json"),
		Short:   "Each replica's cursor, backlog, the entry it refuses and how many were quarantined",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, closeFn, err := openStore(cmd)
			if err != nil {
				return err
			}
			defer closeFn()
			sts, err := store.ReplicaStatuses(cmd.Context())
			if err != nil {
				return err
			}
			if out.JSON() {
				return writeJSON(cmd, sts)
			}
			if len(sts) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no replica has been shipped to (flows serve --replica-database-url)")
				return nil
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "REPLICA\tLAST ENTRY\tBACKLOG\tUPDATED\tREFUSING\tQUARANTINED")
			for _, s := range sts {
				refusing := "-"
				if s.FailingID != nil {
					refusing = fmt.Sprintf("entry %d, %d attempts: %s", *s.FailingID, s.FailingAttempts, s.LastError)
				}
				fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%d\n", s.Replica, s.LastID, s.Backlog, s.UpdatedAt.UTC().Format(time.RFC3339), refusing, s.Quarantined)
			}
			return w.Flush()
		},
	}
	out = cli.AddOutput(status)
	addDatabaseFlag(status)
	cmd.AddCommand(status)
	return cmd
}
