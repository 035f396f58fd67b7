package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Host samples and their rollups (buckets host, host_5m, host_daily).
//
//	host        ts ms(8, sign flipped) | seq(2) → HostSample, binary v1 (see appendHostSample)
//	host_5m     slot start ms(8, sign flipped) → HostRollup, binary v1 (see appendHostRollup)
//	host_daily  day(4, sign flipped, civil day in the DB's Location) → HostRollup, binary v1
//
// The seq keeps two samples with the same millisecond apart (a clock that
// stepped back). Values start with a version byte; floats are stored as
// varints of value·1024 (every stored value is Quantized first).

// Sample fields that can fail on their own. A sample's Errors map is keyed
// by them; a field with an error is left out of the rollups.
const (
	HostFieldCPU      = "cpu"
	HostFieldMemory   = "memory"
	HostFieldSwap     = "swap"
	HostFieldLoad     = "load"
	HostFieldDiskData = "disk_data"
	HostFieldDiskRoot = "disk_root"
	HostFieldNet      = "net"
	HostFieldProcs    = "processes"
	HostFieldGateway  = "gateway"
	HostFieldSessions = "sessions"
)

// HostSlot is the grain of the host_5m rollups.
const HostSlot = 5 * time.Minute

// HostSample is one reading of the host.
type HostSample struct {
	TS int64 `json:"ts"` // unix ms

	// CPU shares of all cores over the time since the previous sample, in
	// percent. Busy is everything but idle and iowait (steal included: on a
	// burstable instance out of credits it is time the guest wanted).
	CPUPct       float64 `json:"cpu_pct"`
	CPUUserPct   float64 `json:"cpu_user_pct"`   // user + nice
	CPUSystemPct float64 `json:"cpu_system_pct"` // system + irq + softirq
	CPUIowaitPct float64 `json:"cpu_iowait_pct"`
	CPUStealPct  float64 `json:"cpu_steal_pct"`
	CPUCount     int     `json:"cpu_count"`

	// MemUsed is MemTotal − MemAvailable: what cannot be had without swapping.
	MemTotal     uint64  `json:"mem_total_bytes"`
	MemUsed      uint64  `json:"mem_used_bytes"`
	MemAvailable uint64  `json:"mem_available_bytes"`
	SwapTotal    uint64  `json:"swap_total_bytes"`
	SwapUsed     uint64  `json:"swap_used_bytes"`
	SwapInBps    float64 `json:"swap_in_bytes_per_s"`
	SwapOutBps   float64 `json:"swap_out_bytes_per_s"`

	Load1       float64 `json:"load1"`
	Load5       float64 `json:"load5"`
	Load15      float64 `json:"load15"`
	LoadPerCore float64 `json:"load_per_core"` // Load1 / CPUCount

	DataDisk DiskStat `json:"disk_data"` // filesystem holding the data dir
	RootDisk DiskStat `json:"disk_root"` // filesystem holding /

	NetInBps  float64 `json:"net_in_bytes_per_s"` // all interfaces but loopback
	NetOutBps float64 `json:"net_out_bytes_per_s"`
	Procs     int     `json:"processes"`

	GatewayProcs  int     `json:"gateway_processes"`
	GatewayCPUPct float64 `json:"gateway_cpu_pct"` // percent of one core, summed
	GatewayRSS    uint64  `json:"gateway_rss_bytes"`

	ActiveSessions  int            `json:"active_sessions"`
	SessionsByAgent map[string]int `json:"sessions_by_agent,omitempty"`

	// Errors says, per field (HostField*), why it could not be read.
	Errors map[string]string `json:"errors,omitempty"`
}

// DiskStat is the usage of one filesystem, in bytes.
type DiskStat struct {
	Total uint64 `json:"total_bytes"`
	Used  uint64 `json:"used_bytes"`
	Free  uint64 `json:"free_bytes"` // available to unprivileged users
}

// Has reports whether field was read without error.
func (s *HostSample) Has(field string) bool {
	_, bad := s.Errors[field]
	return !bad
}

// Quantized is s with every float rounded by Quantize and the maps copied:
// what PutHostSample stores.
func (s HostSample) Quantized() HostSample {
	for _, f := range s.floats() {
		*f = Quantize(*f)
	}
	s.SessionsByAgent = maps.Clone(s.SessionsByAgent)
	s.Errors = maps.Clone(s.Errors)
	return s
}

func (s *HostSample) floats() []*float64 {
	return []*float64{
		&s.CPUPct, &s.CPUUserPct, &s.CPUSystemPct, &s.CPUIowaitPct, &s.CPUStealPct,
		&s.SwapInBps, &s.SwapOutBps, &s.Load1, &s.Load5, &s.Load15, &s.LoadPerCore,
		&s.NetInBps, &s.NetOutBps, &s.GatewayCPUPct,
	}
}

func (s *HostSample) uints() []*uint64 {
	return []*uint64{
		&s.MemTotal, &s.MemUsed, &s.MemAvailable, &s.SwapTotal, &s.SwapUsed,
		&s.DataDisk.Total, &s.DataDisk.Used, &s.DataDisk.Free,
		&s.RootDisk.Total, &s.RootDisk.Used, &s.RootDisk.Free, &s.GatewayRSS,
	}
}

func (s *HostSample) ints() []*int {
	return []*int{&s.CPUCount, &s.Procs, &s.GatewayProcs, &s.ActiveSessions}
}

const hostSampleVersion = 1

// appendHostSample encodes v1: version, ts, floats, uints, ints in the order
// of the accessors above, then the two maps sorted by key.
func appendHostSample(b []byte, s *HostSample) []byte {
	b = append(b, hostSampleVersion)
	b = binary.AppendVarint(b, s.TS)
	for _, f := range s.floats() {
		b = appendFloat(b, *f)
	}
	for _, u := range s.uints() {
		b = binary.AppendUvarint(b, *u)
	}
	for _, i := range s.ints() {
		b = binary.AppendVarint(b, int64(*i))
	}
	b = binary.AppendUvarint(b, uint64(len(s.SessionsByAgent)))
	for _, k := range slices.Sorted(maps.Keys(s.SessionsByAgent)) {
		b = appendStr(b, k)
		b = binary.AppendVarint(b, int64(s.SessionsByAgent[k]))
	}
	b = binary.AppendUvarint(b, uint64(len(s.Errors)))
	for _, k := range slices.Sorted(maps.Keys(s.Errors)) {
		b = appendStr(appendStr(b, k), s.Errors[k])
	}
	return b
}

func decodeHostSample(v []byte) (HostSample, error) {
	var s HostSample
	if len(v) == 0 || v[0] != hostSampleVersion {
		return s, fmt.Errorf("host sample: unknown encoding %x", v[:min(len(v), 1)])
	}
	d := &decoder{b: v[1:]}
	s.TS = d.varint()
	for _, f := range s.floats() {
		*f = d.float()
	}
	for _, u := range s.uints() {
		*u = d.uvarint()
	}
	for _, i := range s.ints() {
		*i = int(d.varint())
	}
	if n := d.count(); n > 0 {
		s.SessionsByAgent = make(map[string]int, n)
		for range n {
			k := d.str()
			s.SessionsByAgent[k] = int(d.varint())
		}
	}
	if n := d.count(); n > 0 {
		s.Errors = make(map[string]string, n)
		for range n {
			k := d.str()
			s.Errors[k] = d.str()
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail()
	}
	if d.err != nil {
		return HostSample{}, fmt.Errorf("host sample: %w", d.err)
	}
	return s, nil
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length and rejects one longer than the bytes left could hold.
func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

// Keys. hostTSKey is the ledger's time encoding: sign bit flipped, so that
// byte order is time order across 1970.
func hostTSKey(tsMillis int64) []byte { return ledgerKeyPrefix(tsMillis) }

func hostSampleKey(tsMillis int64, seq uint16) []byte {
	return binary.BigEndian.AppendUint16(hostTSKey(tsMillis), seq)
}

func decodeHostTS(k []byte) int64 {
	return int64(binary.BigEndian.Uint64(k[:8]) ^ (1 << 63))
}

// SlotStart is the start of the 5-minute slot holding ts (floor division,
// so it holds before 1970 too).
func SlotStart(tsMillis int64) int64 {
	w := HostSlot.Milliseconds()
	q := tsMillis / w
	if tsMillis%w < 0 {
		q--
	}
	return q * w
}

// PutHostSample stores s (quantized, see HostSample.Quantized) and folds it
// into its 5-minute and daily rollups, in one transaction.
func (db *DB) PutHostSample(s HostSample) error {
	if err := db.PutHostSamples([]HostSample{s}); err != nil {
		return fmt.Errorf("put host sample at %d: %w", s.TS, err)
	}
	return nil
}

// PutHostSamples stores samples as PutHostSample does, all in one
// transaction: for history imported or generated in bulk.
func (db *DB) PutHostSamples(samples []HostSample) error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		for _, s := range samples {
			if err := db.putHostSample(tx, s.Quantized()); err != nil {
				return err
			}
		}
		return nil
	})
}

func (db *DB) putHostSample(tx *bolt.Tx, s HostSample) error {
	b := tx.Bucket(bucketHost)
	prefix := hostTSKey(s.TS)
	seq := 0
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) == 10 {
			seq = int(binary.BigEndian.Uint16(k[8:])) + 1
		}
	}
	if seq > 0xFFFF {
		return fmt.Errorf("more than 65536 samples at %d", s.TS)
	}
	if err := b.Put(hostSampleKey(s.TS, uint16(seq)), appendHostSample(nil, &s)); err != nil {
		return err
	}
	if err := foldHost(tx.Bucket(bucketHost5m), hostTSKey(SlotStart(s.TS)), &s); err != nil {
		return fmt.Errorf("host_5m: %w", err)
	}
	if err := foldHost(tx.Bucket(bucketHostDaily), periodKey(DayNumber(s.TS, db.loc)), &s); err != nil {
		return fmt.Errorf("host_daily: %w", err)
	}
	return nil
}

func foldHost(b *bolt.Bucket, key []byte, s *HostSample) error {
	r := NewHostRollup()
	if v := b.Get(key); v != nil {
		var err error
		if r, err = decodeHostRollup(v); err != nil {
			return fmt.Errorf("row %x: %w", key, err)
		}
	}
	r.Add(s)
	return b.Put(key, appendHostRollup(nil, &r))
}

// HostSamples calls fn for each sample with fromMillis <= ts < toMillis, in
// key order. Samples are decoded copies: fn may keep them.
func (db *DB) HostSamples(fromMillis, toMillis int64, fn func(*HostSample) error) error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHost).Cursor()
		end := hostTSKey(toMillis)
		for k, v := c.Seek(hostTSKey(fromMillis)); k != nil && bytes.Compare(k, end) < 0; k, v = c.Next() {
			s, err := decodeHostSample(v)
			if err != nil {
				return fmt.Errorf("host row %x: %w", k, err)
			}
			if err := fn(&s); err != nil {
				return err
			}
		}
		return nil
	})
}

// LatestHostSample returns the sample with the highest key, if any.
func (db *DB) LatestHostSample() (HostSample, bool, error) {
	var s HostSample
	var found bool
	err := db.bolt.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketHost).Cursor().Last()
		if k == nil {
			return nil
		}
		var err error
		if s, err = decodeHostSample(v); err != nil {
			return fmt.Errorf("host row %x: %w", k, err)
		}
		found = true
		return nil
	})
	return s, found, err
}

// HostRollups5m returns the 5-minute rows whose slot starts in
// [fromMillis, toMillis), oldest first.
func (db *DB) HostRollups5m(fromMillis, toMillis int64) ([]HostRollup, error) {
	var out []HostRollup
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return db.scanUnmapped(tx, bucketHost5m, hostTSKey(fromMillis), hostTSKey(toMillis), func(k, v []byte) error {
			r, err := decodeHostRollup(v)
			if err != nil || len(k) != 8 {
				return fmt.Errorf("host_5m row %x: %w", k, err)
			}
			r.Start = decodeHostTS(k)
			r.Day = DayNumber(r.Start, db.loc)
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// HostRollupsDaily returns the daily rows of days from..to inclusive.
func (db *DB) HostRollupsDaily(from, to int32) ([]HostRollup, error) {
	var out []HostRollup
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return db.scanUnmapped(tx, bucketHostDaily, periodKey(from), prefixEnd(periodKey(to)), func(k, v []byte) error {
			r, err := decodeHostRollup(v)
			if err != nil || len(k) != 4 {
				return fmt.Errorf("host_daily row %x: %w", k, err)
			}
			r.Day = int32(binary.BigEndian.Uint32(k) ^ signFlip)
			r.Start = DayStartMillis(r.Day, db.loc)
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// Span is the time range a bucket holds: its oldest and newest keys' times
// (unix ms); OK is false when it is empty.
type Span struct {
	Oldest, Newest int64
	OK             bool
}

// HostSpans returns the spans of the raw samples and of the 5-minute rows.
func (db *DB) HostSpans() (samples, slots Span, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		for _, b := range []struct {
			name []byte
			dst  *Span
		}{{bucketHost, &samples}, {bucketHost5m, &slots}} {
			c := tx.Bucket(b.name).Cursor()
			first, _ := c.First()
			last, _ := c.Last()
			if len(first) >= 8 && len(last) >= 8 {
				*b.dst = Span{Oldest: decodeHostTS(first), Newest: decodeHostTS(last), OK: true}
			}
		}
		return nil
	})
	return samples, slots, err
}

// PruneHostSamples deletes raw samples older than beforeMillis, a chunk per
// transaction. Rollups are kept.
func (db *DB) PruneHostSamples(beforeMillis int64) (int, error) {
	n, err := db.pruneBefore(bucketHost, hostTSKey(beforeMillis))
	if err != nil {
		return n, fmt.Errorf("prune host samples: %w", err)
	}
	return n, nil
}

// PruneHostRollups5m deletes 5-minute rows whose slot starts before
// beforeMillis. Daily rows are kept forever.
func (db *DB) PruneHostRollups5m(beforeMillis int64) (int, error) {
	n, err := db.pruneBefore(bucketHost5m, hostTSKey(beforeMillis))
	if err != nil {
		return n, fmt.Errorf("prune host_5m: %w", err)
	}
	if n > 0 {
		// Remember it: days before it can no longer be recut (rebuildHostDaily).
		err = db.bolt.Update(func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if uint64(beforeMillis) > decodeUint(meta.Get(metaHost5mPrunedBefore)) {
				return meta.Put(metaHost5mPrunedBefore, encodeUint(uint64(beforeMillis)))
			}
			return nil
		})
	}
	return n, err
}

// pruneBefore deletes keys < end from the start of a bucket: it collects a
// chunk of keys in a cursor walk, then deletes them (never delete while
// walking with Next), one transaction per chunk.
func (db *DB) pruneBefore(name, end []byte) (int, error) {
	const chunk = 5000
	total := 0
	for {
		var keys [][]byte
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(name)
			keys = keys[:0]
			c := b.Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k, end) < 0 && len(keys) < chunk; k, _ = c.Next() {
				keys = append(keys, bytes.Clone(k))
			}
			for _, k := range keys {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(keys)
		if len(keys) < chunk {
			return total, nil
		}
	}
}

// ActiveSessions counts the distinct (source, session id) pairs with a model
// call in [now − window, now + window] and splits them by agent (a session's
// agent is that of its latest call). The upper bound admits calls stamped a
// little ahead of this host's clock, or recorded before it stepped back.
func (db *DB) ActiveSessions(nowMillis int64, window time.Duration) (int, map[string]int, error) {
	type ref struct{ source, id string }
	latest := map[ref]struct {
		ts    int64
		agent string
	}{}
	w := window.Milliseconds()
	err := db.LedgerCalls(nowMillis-w, nowMillis+w+1, func(c *LedgerCall) error {
		r := ref{c.Source, c.SessionID}
		if cur, ok := latest[r]; !ok || c.TS >= cur.ts {
			latest[r] = struct {
				ts    int64
				agent string
			}{c.TS, c.Agent}
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("active sessions: %w", err)
	}
	perAgent := map[string]int{}
	for _, s := range latest {
		perAgent[s.agent]++
	}
	return len(latest), perAgent, nil
}

// Quantize rounds v to a multiple of 1/1024. Host metrics are quantized
// before they are stored or summed: sums of such values (and of whole byte
// counts) are exact in float64 below 2^53 units, so a rollup is the same
// whatever order its samples were folded in, and the encoding is compact.
func Quantize(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1024) / 1024
}

// appendFloat writes v as a zigzag uvarint of v·1024 shifted left one bit
// when that is an integer below 2^53 (every quantized value), else a 1 tag
// and the 8 bytes of the IEEE bits.
func appendFloat(b []byte, v float64) []byte {
	k := v * 1024
	if k == math.Trunc(k) && math.Abs(k) < 1<<53 {
		i := int64(k)
		zz := uint64(i<<1) ^ uint64(i>>63)
		return binary.AppendUvarint(b, zz<<1)
	}
	b = binary.AppendUvarint(b, 1)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(v))
}

// decoder reads what the append* helpers wrote; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

var errBadValue = errors.New("storage: malformed value")

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errBadValue
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) float() float64 {
	u := d.uvarint()
	if d.err != nil {
		return 0
	}
	if u&1 == 0 {
		zz := u >> 1
		i := int64(zz>>1) ^ -int64(zz&1)
		return float64(i) / 1024
	}
	if u != 1 || len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
