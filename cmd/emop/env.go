package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"

	"github.com/flows-energy/flows/internal/cli"
	"github.com/spf13/cobra"
)

// Environments, as the reference CLI keeps them: one file per environment,
// DIR/emlite.<env>.env (KEY=VALUE lines), and DIR/emlite.env a symlink to
// the current one, switched by env_set. DIR is $EMOP_HOME, or ~/.simt as
// the reference's. emop takes from the current file the keys it uses
// (envKeys) that the environment does not set; the reference's database
// keys are not used (emop talks to a mediator or a meter, never to the
// database).

// envKeys are the keys emop reads from an environment file.
var envKeys = []string{"MEDIATOR_SERVER", "MEDIATOR_CLIENT_CERT", "MEDIATOR_CLIENT_KEY", "MEDIATOR_CA_CERT"}

var envName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`)

func envDir() string {
	if d := os.Getenv("EMOP_HOME"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".simt")
}

// readEnvFile reads KEY=VALUE lines (blank lines and # comments skipped,
// values may be quoted).
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export "))
		k, v, ok := strings.Cut(line, "=")
		if !ok || line == "" || line[0] == '#' {
			continue
		}
		out[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return out, sc.Err()
}

// loadEnvDefaults sets, from the current environment file, the keys emop
// uses that the process environment does not (flags override both).
func loadEnvDefaults() {
	vals, err := readEnvFile(filepath.Join(envDir(), "emlite.env"))
	if err != nil {
		return // no current environment: flags and variables only
	}
	for _, k := range envKeys {
		if _, set := os.LookupEnv(k); !set && vals[k] != "" {
			os.Setenv(k, vals[k])
		}
	}
}

func addEnvCommands(root *cobra.Command) {
	root.AddCommand(&cobra.Command{Use: "env_set ENV", Short: "make ENV (the file emlite.ENV.env in $EMOP_HOME or ~/.simt) the current environment",
		Example: cli.Example("emop env_set prod"),
		Args:    cobra.ExactArgs(1), RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !envName.MatchString(name) {
				return fmt.Errorf("environment %q: want letters, digits, - or _", name)
			}
			dir := envDir()
			file := "emlite." + name + ".env"
			if _, err := os.Stat(filepath.Join(dir, file)); err != nil {
				return fmt.Errorf("no environment %s: %s does not exist", name, filepath.Join(dir, file))
			}
			link := filepath.Join(dir, "emlite.env")
			if fi, err := os.Lstat(link); err == nil && fi.Mode()&os.ModeSymlink == 0 {
				return fmt.Errorf("%s is a file, not a link to an environment: move it to emlite.<env>.env first", link)
			}
			tmp := link + ".tmp"
			_ = os.Remove(tmp)
			if err := os.Symlink(file, tmp); err != nil {
				return err
			}
			if err := os.Rename(tmp, link); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "env=%s\n", name)
			return nil
		}})
	root.AddCommand(&cobra.Command{Use: "env_show", Short: "the current environment and the settings emop takes from it", Args: cobra.NoArgs,
		Example: cli.Example("emop env_show"),
		RunE: func(cmd *cobra.Command, args []string) error {
			link := filepath.Join(envDir(), "emlite.env")
			target, err := os.Readlink(link)
			if errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(cmd.OutOrStdout(), "env=\n# no current environment (%s); emop uses flags and the environment\n", link)
				return nil
			}
			if err != nil {
				return err
			}
			name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(target), "emlite."), ".env")
			vals, err := readEnvFile(link)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "env=%s\n", name)
			for _, k := range envKeys {
				if v, ok := vals[k]; ok {
					fmt.Fprintf(cmd.OutOrStdout(), "%s=%s\n", k, v)
				}
			}
			return nil
		}})
	root.AddCommand(&cobra.Command{Use: "version", Short: "emop's version", Args: cobra.NoArgs,
		Example: cli.Example("emop version"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "version=%s\n", version())
			return nil
		}})
}

// version is the module version, with the VCS revision when built from a
// checkout.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v
}

// clockDrift takes the clock-drift fields from GetInfo's JSON, where they
// are: under "shadow".
func clockDrift(js string) (map[string]any, error) {
	var info struct {
		Shadow struct {
			Diff     *int    `json:"clock_time_diff_seconds"`
			SyncedAt *string `json:"clock_time_diff_synced_at"`
		} `json:"shadow"`
	}
	if err := json.Unmarshal([]byte(js), &info); err != nil {
		return nil, fmt.Errorf("mediator's meter info: %w", err)
	}
	return map[string]any{"clock_time_diff_seconds": info.Shadow.Diff, "clock_time_diff_synced_at": info.Shadow.SyncedAt}, nil
}
