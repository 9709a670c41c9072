package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/flows-energy/flows"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/flows-energy/flows/postgres"
	"github.com/spf13/cobra"
)

// flows db: database logins for people and tools (psql, Grafana,
// Tableau). The role model is migration 0016's; README "Connecting a BI
// tool".

func newDBCmd() *cobra.Command {
	db := &cobra.Command{Use: "db", Short: "Database logins for analysts and BI tools (read-only or operator, optionally one ESCO)"}
	var role, esco, login string
	grant := &cobra.Command{
		Use:     "grant --role readonly|operator [--esco CODE] --login NAME",
		Example: cli.Example("flows db grant --role readonly --esco WLCE --login wlce_bi"),
		Short:   "Create a database login and print its connection URL (the password is shown only then)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			access := postgres.SQLAccess(role)
			if access != postgres.SQLReadonly && access != postgres.SQLOperator {
				return flows.FieldError("--role", "%q is not readonly or operator", role)
			}
			if err := postgres.ValidateLoginName(login); err != nil {
				return flagError(err)
			}
			url, err := databaseURL(cmd)
			if err != nil {
				return err
			}
			return withStore(cmd.Context(), url, func(store *postgres.Store) error {
				password, err := store.GrantSQLLogin(cmd.Context(), postgres.SQLLoginSpec{Name: login, Access: access, ESCO: esco})
				if err != nil {
					return flagError(err)
				}
				loginURL, err := postgres.LoginURL(url, login, password)
				if err != nil {
					return err
				}
				scope := "every ESCO"
				if esco != "" {
					scope = "ESCO " + esco
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "created login %s (%s, %s); its password is shown only now:\n", login, role, scope)
				fmt.Fprintln(cmd.OutOrStdout(), loginURL)
				return nil
			})
		},
	}
	grant.Flags().StringVar(&role, "role", "", "readonly (SELECT) or operator (also the seed's tariff update)")
	grant.Flags().StringVar(&esco, "esco", "", "limit the login to this ESCO's meters (default: every ESCO)")
	grant.Flags().StringVar(&login, "login", "", "the login's name: lower-case letters, digits, '_' (roles are the cluster's: unique across its databases)")
	_ = grant.MarkFlagRequired("role")
	_ = grant.MarkFlagRequired("login")
	addDatabaseFlag(grant)

	revoke := &cobra.Command{
		Use:     "revoke --login NAME",
		Example: cli.Example("flows db revoke --login wlce_bi"),
		Short:   "Remove a database login: it can connect no more, and its open sessions are ended",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := postgres.ValidateLoginName(login); err != nil {
				return flagError(err)
			}
			url, err := databaseURL(cmd)
			if err != nil {
				return err
			}
			return withStore(cmd.Context(), url, func(store *postgres.Store) error {
				open, err := store.RevokeSQLLogin(cmd.Context(), login)
				if err != nil {
					return flagError(err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "revoked login %s\n", login)
				if open > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "%d of its sessions are still open (ending them needs pg_signal_backend); they hold no privilege now\n", open)
				}
				return nil
			})
		},
	}
	revoke.Flags().StringVar(&login, "login", "", "the login to remove")
	_ = revoke.MarkFlagRequired("login")
	addDatabaseFlag(revoke)

	var out *cli.Output
	list := &cobra.Command{
		Use:     "logins",
		Example: cli.Example("flows db logins", "flows db logins --output json"),
		Short:   "List the logins granted in this database",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			url, err := databaseURL(cmd)
			if err != nil {
				return err
			}
			return withStore(cmd.Context(), url, func(store *postgres.Store) error {
				logins, err := store.SQLLogins(cmd.Context())
				if err != nil {
					return err
				}
				if out.JSON() {
					return writeJSON(cmd, logins)
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "LOGIN\tROLE\tESCO\tCREATED")
				for _, l := range logins {
					scope := l.ESCO
					if scope == "" {
						scope = "(every ESCO)"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", l.Name, l.Access, scope, l.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"))
				}
				return w.Flush()
			})
		},
	}
	out = cli.AddOutput(list)
	addDatabaseFlag(list)
	db.AddCommand(grant, revoke, list)
	return db
}

// withStore runs fn with a store on url.
func withStore(ctx context.Context, url string, fn func(*postgres.Store) error) error {
	pool, err := postgres.Open(ctx, url)
	if err != nil {
		return err
	}
	store := postgres.NewStore(pool)
	defer store.Close()
	return fn(store)
}

// flagError names the command's flags in the store's field errors.
func flagError(err error) error {
	var e *flows.Error
	if errors.As(err, &e) && (e.Field == "login" || e.Field == "esco" || e.Field == "role") {
		return &flows.Error{Code: e.Code, Field: "--" + e.Field, Message: e.Message}
	}
	return err
}

// The demo's login for BI tools: read-only, limited to the demo's ESCO,
// with a password kept in the data directory (DATA/readonly-password)
// so its URL stays the same between runs.
const demoReadonlyLogin = "demo_readonly"

// demoReadonlyURL (re)creates the demo's read-only login and returns its
// connection URL.
func demoReadonlyURL(ctx context.Context, store *postgres.Store, databaseURL, dataDir, esco string) (string, error) {
	password, err := keepSecret(filepath.Join(dataDir, "readonly-password"))
	if err != nil {
		return "", err
	}
	if _, err := store.RevokeSQLLogin(ctx, demoReadonlyLogin); err != nil && flows.ErrorCode(err) != flows.ENOTFOUND {
		return "", err
	}
	if _, err := store.GrantSQLLogin(ctx, postgres.SQLLoginSpec{Name: demoReadonlyLogin, Access: postgres.SQLReadonly,
		ESCO: esco, Password: string(password)}); err != nil {
		return "", err
	}
	return postgres.LoginURL(databaseURL, demoReadonlyLogin, string(password))
}
