package daemon

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/signerd/signerd/internal/metrics"
)

func TestHSMHealthMetrics(t *testing.T) {
	m := metrics.New()
	report := hsmHealthMetrics(m)
	for _, up := range []bool{true, true, false, false, true, false, true} {
		report(up)
	}
	const want = `
# HELP signerd_hsm_recoveries_total Times the HSM connection was re-established after a fault.
# TYPE signerd_hsm_recoveries_total counter
signerd_hsm_recoveries_total 2
# HELP signerd_hsm_up 1 when the HSM is reachable and logged in, else 0.
# TYPE signerd_hsm_up gauge
signerd_hsm_up 1
# HELP signerd_hsm_errors_total HSM failures by class.
# TYPE signerd_hsm_errors_total counter
signerd_hsm_errors_total{class="unavailable"} 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"signerd_hsm_recoveries_total", "signerd_hsm_up", "signerd_hsm_errors_total"); err != nil {
		t.Fatal(err)
	}
}
