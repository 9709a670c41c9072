package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flows-energy/flows"
	flowshttp "github.com/flows-energy/flows/http"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/spf13/cobra"
)

func newAuthCmd() *cobra.Command {
	auth := &cobra.Command{Use: "auth", Short: "API tokens"}
	var role, esco, subject, secretFile string
	var ttl time.Duration
	issue := &cobra.Command{
		Use:     "issue",
		Example: cli.Example("FLOWS_JWT_SECRET=... flows auth issue --sub alice --role operator --esco WLCE"),
		Short:   "Print a signed API token (HS256 secret from $FLOWS_JWT_SECRET or --secret-file)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			secret, err := jwtSecret(secretFile)
			if err != nil {
				return err
			}
			if subject == "" {
				subject = role
			}
			tok, err := flowshttp.IssueToken(secret, subject, flowshttp.Role(role), esco, ttl, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	issue.Flags().StringVar(&role, "role", "", "admin, operator or readonly (required)")
	issue.Flags().StringVar(&esco, "esco", "", "limit the token to this ESCO's meters")
	issue.Flags().StringVar(&subject, "sub", "", "subject (who the token is for; default the role)")
	issue.Flags().DurationVar(&ttl, "ttl", 30*24*time.Hour, "lifetime")
	issue.Flags().StringVar(&secretFile, "secret-file", "", "file holding the signing secret (e.g. DATA/jwt-secret of a demo)")
	_ = issue.MarkFlagRequired("role")
	auth.AddCommand(issue)
	return auth
}

// jwtSecret returns the signing secret from a file, or FLOWS_JWT_SECRET.
func jwtSecret(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, flows.FieldError("--secret-file", "%v", err)
		}
		return []byte(strings.TrimSpace(string(b))), nil
	}
	if s := os.Getenv("FLOWS_JWT_SECRET"); s != "" {
		return []byte(s), nil
	}
	return nil, flows.FieldError("FLOWS_JWT_SECRET", "not set: set it to the server's signing secret, or pass --secret-file (the demo's is %s)",
		filepath.Join(defaultDataDir(), "jwt-secret"))
}
