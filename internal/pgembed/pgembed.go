// Package pgembed runs a private PostgreSQL cluster from the binaries the
// distribution installed: initdb into a directory, start the server on a
// loopback port, stop it cleanly. The demo and the test harness both use it.
//
// PostgreSQL refuses to run as root, so when the caller is root every server
// command runs as the "postgres" system user (via runuser) and the cluster
// directory is owned by that user. When no server binaries are found and the
// caller may install packages (root, or password-less sudo), the Debian
// package "postgresql" is installed with apt-get.
package pgembed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config describes a cluster.
type Config struct {
	// Dir is the cluster's data directory. It is created (with initdb) when
	// it holds no cluster yet, and reused otherwise.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// KeepPort, with Port 0, keeps the port between starts: the one of
	// the last start is tried first (so yesterday's psql URL still
	// works), a free one when it is taken. It is kept in the data
	// directory's flows.port.
	KeepPort bool
	// Durable keeps fsync on. Tests turn it off for speed; the demo keeps it.
	Durable bool
	// Settings are server parameters for this start (name to value,
	// passed as -c name=value): a benchmark sizes its cluster as a
	// production database would be, the demo and tests keep the defaults.
	Settings map[string]string
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
}

// Cluster is a running PostgreSQL server.
type Cluster struct {
	dir    string
	port   int
	bin    string
	asRoot bool
	log    *slog.Logger
	once   sync.Once
}

// SystemUser is the account the server runs as when the caller is root.
const SystemUser = "postgres"

// Superuser is the database superuser created by initdb.
const Superuser = "postgres"

// Start creates (if needed) and starts the cluster in cfg.Dir. The caller
// must call Stop.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bin, err := FindBinaries(ctx, log)
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, asRoot: os.Geteuid() == 0, log: log}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("cluster directory %q: %w", cfg.Dir, err)
	}
	if c.dir, err = c.prepareDir(ctx, dir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(c.dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		log.Info("initialising PostgreSQL cluster", "dir", c.dir)
		args := []string{"-D", c.dir, "-U", Superuser, "-A", "trust", "-E", "UTF8", "--locale=C"}
		if !cfg.Durable {
			args = append(args, "--no-sync")
		}
		if out, err := c.run(ctx, "initdb", args...); err != nil {
			return nil, fmt.Errorf("initdb in %s: %w\n%s", c.dir, err, out)
		}
		conf := "\n# written by flows\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nmax_connections = 300\nshared_buffers = 128MB\ntimezone = 'UTC'\nlog_timezone = 'UTC'\nlog_min_messages = warning\n"
		if !cfg.Durable {
			conf += "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
		}
		if err := c.appendConf(ctx, conf); err != nil {
			return nil, err
		}
	}
	// A server still running here was left by a process that died without
	// stopping it (callers make sure the directory is theirs alone, e.g. by
	// a lock file); stop it so we start with our own settings.
	if _, err := c.run(ctx, "pg_ctl", "-D", c.dir, "status"); err == nil {
		log.Warn("stopping a PostgreSQL server left running in the data directory", "dir", c.dir)
		if out, err := c.run(ctx, "pg_ctl", "-D", c.dir, "-m", "fast", "-w", "stop"); err != nil {
			return nil, fmt.Errorf("stop leftover server in %s: %w\n%s", c.dir, err, out)
		}
	}
	// A free port can be taken by someone else between our probe and the
	// server's bind; try a few.
	portFile := filepath.Join(c.dir, "flows.port")
	kept := 0
	if cfg.Port == 0 && cfg.KeepPort {
		if b, err := os.ReadFile(portFile); err == nil {
			kept, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
	}
	for attempt := 0; ; attempt++ {
		port := cfg.Port
		if attempt == 0 && kept > 0 {
			port = kept
		}
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		out, err := c.run(ctx, "pg_ctl", "-D", c.dir, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60",
			"-o", "-p "+strconv.Itoa(port)+settings(cfg.Settings), "start")
		if err == nil {
			c.port = port
			log.Info("PostgreSQL started", "dir", c.dir, "port", port)
			if kept > 0 && port != kept {
				log.Warn("PostgreSQL's port of the last run is taken: the database URL has changed", "was", kept, "now", port)
			}
			if cfg.KeepPort {
				if err := os.WriteFile(portFile, []byte(strconv.Itoa(port)+"\n"), 0o644); err != nil {
					log.Warn("keeping PostgreSQL's port", "error", err)
				}
			}
			return c, nil
		}
		if attempt >= 2 || cfg.Port != 0 {
			tail, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
			if len(tail) > 2000 {
				tail = tail[len(tail)-2000:]
			}
			return nil, fmt.Errorf("start PostgreSQL in %s: %w\n%s\n%s", c.dir, err, out, tail)
		}
	}
}

// Dir returns the data directory actually used (see prepareDir).
func (c *Cluster) Dir() string { return c.dir }

// Port returns the server's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// URL returns a connection URL for database db as the superuser.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, c.port, db)
}

// Stop shuts the server down (fast mode: open sessions are ended). Safe to
// call more than once.
func (c *Cluster) Stop() error {
	var err error
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var out []byte
		out, err = c.run(ctx, "pg_ctl", "-D", c.dir, "-m", "fast", "-w", "stop")
		if err != nil {
			err = fmt.Errorf("stop PostgreSQL in %s: %w\n%s", c.dir, err, out)
		}
	})
	return err
}

// StopDir stops whatever server runs in dir, immediately. It is used to
// clean up after a test process that was killed before it could stop its
// cluster.
func StopDir(ctx context.Context, dir string) {
	bin, err := FindBinaries(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		return
	}
	c := &Cluster{dir: dir, bin: bin, asRoot: os.Geteuid() == 0}
	_, _ = c.run(ctx, "pg_ctl", "-D", dir, "-m", "immediate", "-w", "stop")
}

// prepareDir makes dir usable by the server. As root, the server runs as
// the postgres user, which needs to reach the directory; a directory it
// cannot reach (for example under /root, or one made by mktemp) is swapped
// for a stable location under /var/lib/flows/clusters derived from dir's
// path, so the same --data keeps the same cluster.
func (c *Cluster) prepareDir(ctx context.Context, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create cluster directory: %w", err)
	}
	if !c.asRoot {
		return dir, nil
	}
	uid, gid, err := systemUserIDs()
	if err != nil {
		return "", err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return "", fmt.Errorf("give %s to %s: %w", dir, SystemUser, err)
	}
	if err := exec.CommandContext(ctx, "runuser", "-u", SystemUser, "--", "test", "-w", dir, "-a", "-x", dir).Run(); err == nil {
		return dir, nil
	}
	sum := sha256.Sum256([]byte(dir))
	parent := "/var/lib/flows/clusters"
	// The parents must be traversable by the postgres user; the cluster
	// directory itself stays private (0700, owned by postgres).
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("create cluster directory: %w", err)
	}
	alt := filepath.Join(parent, hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(alt, 0o700); err != nil {
		return "", fmt.Errorf("create cluster directory: %w", err)
	}
	if err := os.Chown(alt, uid, gid); err != nil {
		return "", fmt.Errorf("give %s to %s: %w", alt, SystemUser, err)
	}
	_ = os.WriteFile(filepath.Join(dir, "CLUSTER_LOCATION"), []byte(alt+"\n"), 0o644)
	c.log.Info("the postgres user cannot reach the data directory; keeping the cluster elsewhere", "dir", dir, "cluster_dir", alt)
	return alt, nil
}

func (c *Cluster) appendConf(ctx context.Context, conf string) error {
	f, err := os.OpenFile(filepath.Join(c.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("configure cluster: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(conf); err != nil {
		return fmt.Errorf("configure cluster: %w", err)
	}
	return nil
}

// run runs one of the server binaries, as the postgres user when root.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.asRoot {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", SystemUser, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	// The server inherits our stdout otherwise and keeps `go test` waiting
	// for the pipe to close; give it no terminal.
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &out, nil
	cmd.Dir = "/"
	// Own process group: a Ctrl-C at the terminal reaches only our process,
	// which then stops the server in order, instead of killing it mid-way.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	err := cmd.Run()
	return out.Bytes(), err
}

func systemUserIDs() (int, int, error) {
	u, err := user.Lookup(SystemUser)
	if err != nil {
		return 0, 0, fmt.Errorf("running as root needs the %q system user (installed with the postgresql package): %w", SystemUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var (
	findOnce sync.Mutex
	found    string
)

// FindBinaries returns the directory holding initdb, pg_ctl and postgres,
// installing the distribution's PostgreSQL package when none is found and
// the caller is allowed to.
func FindBinaries(ctx context.Context, log *slog.Logger) (string, error) {
	findOnce.Lock()
	defer findOnce.Unlock()
	if found != "" {
		return found, nil
	}
	if dir := lookBinaries(); dir != "" {
		found = dir
		return dir, nil
	}
	if err := install(ctx, log); err != nil {
		return "", err
	}
	if dir := lookBinaries(); dir != "" {
		found = dir
		return dir, nil
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found after installing; install the postgresql package")
}

func lookBinaries() string {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
			if st, err := os.Stat(filepath.Join(dir, b)); err != nil || st.IsDir() {
				return false
			}
		}
		return true
	}
	// Debian keeps server binaries out of PATH, one directory per major
	// version; prefer the newest.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real)
		}
		if has(filepath.Dir(p)) {
			return filepath.Dir(p)
		}
	}
	return ""
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func install(ctx context.Context, log *slog.Logger) error {
	var prefix []string
	switch {
	case os.Geteuid() == 0:
	case exec.CommandContext(ctx, "sudo", "-n", "true").Run() == nil:
		prefix = []string{"sudo", "-n"}
	default:
		return errors.New("PostgreSQL server binaries not found and this user cannot install packages; run: sudo apt-get install -y postgresql")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return errors.New("PostgreSQL server binaries not found and apt-get is not available; install PostgreSQL 13 or newer")
	}
	log.Info("installing PostgreSQL with apt-get (one-time set-up)")
	aptInstall := append(append([]string{}, prefix...), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql")
	out, err := exec.CommandContext(ctx, aptInstall[0], aptInstall[1:]...).CombinedOutput()
	if err != nil {
		// The package lists may be missing or stale on a fresh machine.
		update := append(append([]string{}, prefix...), "apt-get", "update", "-q")
		if uout, uerr := exec.CommandContext(ctx, update[0], update[1:]...).CombinedOutput(); uerr != nil {
			return fmt.Errorf("apt-get update: %w\n%s", uerr, lastLines(uout, 20))
		}
		out, err = exec.CommandContext(ctx, aptInstall[0], aptInstall[1:]...).CombinedOutput()
	}
	if err != nil {
		return fmt.Errorf("apt-get install postgresql: %w\n%s", err, lastLines(out, 20))
	}
	return nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// settings renders server parameters as postgres options, in name order
// (names and values are the caller's constants: no quoting is needed).
func settings(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, " -c %s=%s", k, m[k])
	}
	return b.String()
}
