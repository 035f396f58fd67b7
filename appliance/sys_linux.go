package appliance

import "golang.org/x/sys/unix"

// peerPID is the process at the other end of a unix socket (0: unknown).
func peerPID(fd uintptr) int {
	cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0
	}
	return int(cred.Pid)
}

// clockSync says whether the kernel keeps the clock synchronised (NTP),
// with its estimated error in µs; known is false when it cannot be asked.
func clockSync() (synced, known bool, errMicros int64) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false, false, 0
	}
	return state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0, true, int64(tx.Esterror)
}
