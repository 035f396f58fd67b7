package appliance

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// gcSettings reads the GC percent and the memory limit.
func gcSettings() (percent, limit int64) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64()), int64(s[1].Value.Uint64())
}

// A one-shot read collects nothing until its heap reaches oneShotHeap;
// from the first collection on, the runtime paces as always.
func TestOneShotMemory(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))
	oneShotMemory()
	if p, l := gcSettings(); p != -1 || l != oneShotHeap {
		t.Fatalf("during a one-shot read: GC percent %d (want off: -1), memory limit %d (want %d)", p, l, oneShotHeap)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC() // the heap reached the limit: the first collection
		if p, l := gcSettings(); p == 100 && l == math.MaxInt64 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("GC pacing not restored after the first collection")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
