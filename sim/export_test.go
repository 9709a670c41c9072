package sim

import "time"

// FillProfile gives m a profile log as full as it gets (its depth and
// the eighth kept before a trim), ending at now, from the model's load
// shape, as if it had run that long (consumption only: no charges,
// events or top-ups), so that a benchmark can weigh a fleet of full logs
// without simulating five weeks of every meter.
func FillProfile(m *Meter, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	const half = 30 * time.Minute
	end := now.Truncate(half)
	depth := m.profileDepth()
	for at := end.Add(-time.Duration(depth+depth/8-1) * half); !at.After(end); at = at.Add(half) {
		a, b, solar := m.power(at)
		m.st.ImportJ[0] += a * 1800
		m.st.ImportJ[1] += b * 1800
		m.st.ExportJ[0] += solar * 1800
		m.snapshot(at)
	}
	m.st.LastUpdate = end
}
