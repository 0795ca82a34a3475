package drivertest

import (
	"testing"

	"go.uber.org/goleak"
)

// The Go scenarios and the survey's relay start goroutines (cancel watchers,
// relays); none may outlive a test.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
