package main

import (
	"fmt"

	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/postgres"
	"github.com/spf13/cobra"
)

func newMigrateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "migrate [up|status]",
		Example: cli.Example("flows migrate", "flows migrate status"),
		Short:   "Apply pending schema migrations (up, the default) or list them (status)",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			action := "up"
			if len(args) == 1 {
				action = args[0]
			}
			if action != "up" && action != "status" {
				return cli.Usagef(cmd, "%q is not up or status", action)
			}
			url, err := databaseURL(cmd)
			if err != nil {
				return err
			}
			pool, err := postgres.Open(cmd.Context(), url)
			if err != nil {
				return err
			}
			defer pool.Close()
			out := cmd.OutOrStdout()
			if action == "up" {
				done, err := postgres.Migrate(cmd.Context(), pool)
				for _, m := range done {
					fmt.Fprintf(out, "applied %04d_%s\n", m.Version, m.Name)
				}
				if err != nil {
					return err
				}
				if len(done) == 0 {
					fmt.Fprintln(out, "schema is up to date")
				}
				return nil
			}
			all, err := postgres.MigrationStatus(cmd.Context(), pool)
			if err != nil {
				return err
			}
			for _, m := range all {
				state := "pending"
				if m.AppliedAt != nil {
					state = "applied " + m.AppliedAt.Format("2006-01-02T15:04:05Z")
				}
				fmt.Fprintf(out, "%04d_%s\t%s\n", m.Version, m.Name, state)
			}
			return nil
		},
	}
	addDatabaseFlag(cmd)
	return cmd
}
