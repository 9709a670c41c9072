// Package pgtest gives tests a real, migrated PostgreSQL database each.
//
// A test binary calls Main from TestMain: it starts one private cluster
// (package pgembed) for the whole binary, or uses the server named by
// FLOWS_TEST_DATABASE_URL when set. NewDB then creates a fresh database for
// one test by copying a migrated template (fast: a file copy, no
// migrations per test), and drops it when the test ends, so tests are
// isolated and may run in parallel.
package pgtest

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flows-energy/flows/internal/pgembed"
	"github.com/flows-energy/flows/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnvURL names an existing server to use instead of a private cluster. Its
// user must be allowed to create databases.
const EnvURL = "FLOWS_TEST_DATABASE_URL"

var (
	adminURL string // URL of a maintenance database on the server
	cluster  *pgembed.Cluster
	tplOnce  sync.Once
	tplErr   error
	tplName  string
	createMu sync.Mutex // CREATE DATABASE ... TEMPLATE must not race on one template
	seq      atomic.Int64
)

const dirPrefix = "flows-pgtest-"

// Main runs the tests of a package with a database server available, and
// exits with their status.
func Main(m *testing.M) {
	os.Exit(Run(m))
}

// Run is Main for a TestMain that has more to do: it returns the exit code.
func Run(m *testing.M) int {
	ctx := context.Background()
	if u := os.Getenv(EnvURL); u != "" {
		adminURL = u
	} else {
		reapOrphans(ctx)
		dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
		if err != nil {
			log.Printf("pgtest: %v", err)
			return 1
		}
		defer os.RemoveAll(dir)
		// As root the server runs as the postgres user, which must reach
		// the data directory inside; the data directory itself is private.
		if err := os.Chmod(dir, 0o755); err != nil {
			log.Printf("pgtest: %v", err)
			return 1
		}
		cluster, err = pgembed.Start(ctx, pgembed.Config{Dir: filepath.Join(dir, "data")})
		if err != nil {
			log.Printf("pgtest: %v", err)
			return 1
		}
		defer cluster.Stop()
		adminURL = cluster.URL("postgres")
	}
	code := m.Run()
	if tplName != "" {
		if conn, err := pgx.Connect(ctx, adminURL); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{tplName}.Sanitize())
			conn.Close(ctx)
		}
	}
	return code
}

// reapOrphans stops clusters left behind by test processes that were killed
// before their cleanup ran, and removes their directories.
func reapOrphans(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), dirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		pgembed.StopDir(ctx, filepath.Join(d, "data"))
		_ = os.RemoveAll(d)
	}
}

func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

// URL returns the maintenance URL of the test server (for tests that create
// databases of their own).
func URL() string { return adminURL }

// NewDB creates a fresh migrated database for t and returns its URL. The
// database is dropped when t ends.
func NewDB(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	tplOnce.Do(func() { tplErr = makeTemplate(ctx) })
	if tplErr != nil {
		t.Fatalf("pgtest: template database: %v", tplErr)
	}
	name := fmt.Sprintf("flows_test_%d_%d", os.Getpid(), seq.Add(1))
	if err := exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", pgx.Identifier{name}.Sanitize(), pgx.Identifier{tplName}.Sanitize())); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		_ = exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{name}.Sanitize()))
	})
	return withDB(adminURL, name)
}

// NewPool is NewDB plus an open pool (closed when t ends).
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := postgres.Open(ctx, NewDB(t))
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// EmptyDB creates an empty (unmigrated) database for t, for tests of the
// migrations themselves.
func EmptyDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("flows_empty_%d_%d", os.Getpid(), seq.Add(1))
	if err := exec(context.Background(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		_ = exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{name}.Sanitize()))
	})
	return withDB(adminURL, name)
}

func makeTemplate(ctx context.Context) error {
	tplName = fmt.Sprintf("flows_template_%d", os.Getpid())
	if err := exec(ctx, "CREATE DATABASE "+pgx.Identifier{tplName}.Sanitize()); err != nil {
		return err
	}
	pool, err := postgres.Open(ctx, withDB(adminURL, tplName))
	if err != nil {
		return err
	}
	defer pool.Close()
	_, err = postgres.Migrate(ctx, pool)
	return err
}

func exec(ctx context.Context, sql string) error {
	createMu.Lock()
	defer createMu.Unlock()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// withDB replaces the database name in a postgres:// URL.
func withDB(url, db string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return url
	}
	q := ""
	if i := strings.IndexByte(url, '?'); i >= 0 {
		q = url[i:]
	}
	user := cfg.User
	if cfg.Password != "" {
		user += ":" + cfg.Password
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s%s", user, cfg.Host, cfg.Port, db, q)
}
