package alert_test

import (
	"testing"

	"github.com/flows-energy/flows/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
