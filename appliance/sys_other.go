//go:build !linux

package appliance

// peerPID: peer credentials are read on Linux only (the daemon runs
// there; other systems run reports on a laptop).
func peerPID(uintptr) int { return 0 }

// clockSync: the kernel's NTP state is read on Linux only.
func clockSync() (synced, known bool, errMicros int64) { return false, false, 0 }
