package cli

import (
	"strconv"
	"strings"
	"time"
)

// parseDuration is time.ParseDuration plus a "d" (24h) suffix, since
// signature lifetimes are naturally given in days.
func parseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil {
			return 0, err
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
