package appliance

import (
	"math"
	"runtime"
	"runtime/debug"
)

// oneShotHeap is the heap a one-shot read may grow to before its first
// garbage collection: a report over 100 MB of transcripts allocates less,
// so it never collects, and it stays well inside its 64 MiB budget.
const oneShotHeap = 40 << 20

// oneShotMemory is for a process that reads transcripts once and exits (a
// report straight from transcripts, `ingest --once`; never serve, whose
// memory must go back): no garbage collection until the heap reaches
// oneShotHeap, then the usual pacing from that first collection on, so a
// heap that keeps growing (gigabytes of history) is collected as always.
func oneShotMemory() {
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(oneShotHeap)
	// The first collection finalizes this sentinel (large enough to stay
	// out of the tiny allocator, whose objects may never be finalized).
	sentinel := new([64]byte)
	runtime.SetFinalizer(sentinel, func(*[64]byte) {
		debug.SetMemoryLimit(math.MaxInt64)
		debug.SetGCPercent(100)
	})
}
