package storage

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Key and value encodings. Every key that sorts by time starts with a
// fixed-width big-endian number, so byte order is time order and range scans
// are Seek + Compare.

// DayNumber is the civil date of ts (unix ms) in loc, as days since
// 1970-01-01. Rollup rows are keyed by it.
func DayNumber(tsMillis int64, loc *time.Location) int32 {
	t := time.UnixMilli(tsMillis).In(loc)
	y, m, d := t.Date()
	return DayOfDate(y, m, d)
}

// DayOfDate is the day number of a civil date.
func DayOfDate(y int, m time.Month, d int) int32 {
	return int32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// DayDate is the civil date of a day number.
func DayDate(day int32) time.Time {
	return time.Unix(int64(day)*86400, 0).UTC()
}

// DayString formats a day number as YYYY-MM-DD.
func DayString(day int32) string { return DayDate(day).Format(time.DateOnly) }

// ParseDay parses YYYY-MM-DD into a day number.
func ParseDay(s string) (int32, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return 0, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return DayOfDate(t.Date()), nil
}

// WeekStart is the Monday that starts the ISO week holding day.
// 1970-01-01 was a Thursday, three days after a Monday.
func WeekStart(day int32) int32 {
	offset := (int64(day) + 3) % 7
	if offset < 0 {
		offset += 7
	}
	return day - int32(offset)
}

// DayStartMillis is the first millisecond of day in loc.
func DayStartMillis(day int32, loc *time.Location) int64 {
	y, m, d := DayDate(day).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc).UnixMilli()
}

// putString appends a length-prefixed string: names are untrusted text and
// may hold any byte, so no separator byte would be safe.
func putString(b []byte, s string) []byte {
	if len(s) > 0xFFFF {
		s = s[:0xFFFF]
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

var errShortKey = errors.New("storage: short key")

func getString(b []byte) (string, []byte, error) {
	if len(b) < 2 {
		return "", nil, errShortKey
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+n {
		return "", nil, errShortKey
	}
	return string(b[2 : 2+n]), b[2+n:], nil
}

// rowKey is period(4) | source | agent | user | provider | model.
func rowKey(period int32, d Dim) []byte {
	b := make([]byte, 0, 4+10+len(d.Source)+len(d.Agent)+len(d.User)+len(d.Provider)+len(d.Model))
	b = binary.BigEndian.AppendUint32(b, uint32(period)^signFlip)
	b = putString(b, d.Source)
	b = putString(b, d.Agent)
	b = putString(b, d.User)
	b = putString(b, d.Provider)
	return putString(b, d.Model)
}

// signFlip makes negative day numbers (before 1970) sort before positive ones.
const signFlip = 1 << 31

func periodKey(period int32) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(period)^signFlip)
}

func decodeRowKey(k []byte) (int32, Dim, error) {
	if len(k) < 4 {
		return 0, Dim{}, errShortKey
	}
	period := int32(binary.BigEndian.Uint32(k) ^ signFlip)
	rest := k[4:]
	var d Dim
	var err error
	for _, f := range []*string{&d.Source, &d.Agent, &d.User, &d.Provider, &d.Model} {
		if *f, rest, err = getString(rest); err != nil {
			return 0, Dim{}, err
		}
	}
	return period, d, nil
}

// Totals values are a version byte and the fields: version 1 (schema 1)
// holds the first 12 as 8-byte big-endian int64s, version 2 (schema 2) all
// 14 so, version 3 (schema 3) all 14 as varints, since most are small or
// zero (a one-call session's totals: 113 → 21 bytes, and a cold ingest
// writes a session per file). All decode; writes are version 3.
const (
	totalsSizeV1 = 1 + 12*8
	totalsSizeV2 = 1 + 14*8
)

func encodeTotals(t Totals) []byte {
	return appendTotals(make([]byte, 0, 32), t)
}

func appendTotals(b []byte, t Totals) []byte {
	b = append(b, 3)
	for _, v := range t.fields() {
		b = binary.AppendVarint(b, v)
	}
	return b
}

// fields are t's values in the order values hold them.
func (t *Totals) fields() [14]int64 {
	return [14]int64{
		t.Messages, t.Input, t.Output, t.CacheRead, t.CacheWrite,
		t.CostNanos, t.CostInputNanos, t.CostOutputNanos, t.CostCacheReadNanos, t.CostCacheWriteNanos,
		t.UnpricedMessages, t.UnpricedTokens, t.Reasoning, t.CostToolsNanos,
	}
}

var errBadTotals = errors.New("storage: bad totals value")

// decodeTotals decodes a value that is one Totals and nothing more.
func decodeTotals(b []byte) (Totals, error) {
	t, rest, err := readTotals(b)
	if err == nil && len(rest) != 0 {
		err = errBadTotals
	}
	return t, err
}

// readTotals decodes the Totals value b starts with, and returns what
// follows it.
func readTotals(b []byte) (Totals, []byte, error) {
	bad := errBadTotals
	var v [14]int64
	switch {
	case len(b) == 0:
		return Totals{}, nil, bad
	case b[0] == 3:
		p := b[1:]
		for i := range v {
			x, k := binary.Varint(p)
			if k <= 0 {
				return Totals{}, nil, bad
			}
			v[i], p = x, p[k:]
		}
		b = p
	case b[0] == 1 && len(b) >= totalsSizeV1, b[0] == 2 && len(b) >= totalsSizeV2:
		n := 12
		if b[0] == 2 {
			n = 14
		}
		for i := range n {
			v[i] = int64(binary.BigEndian.Uint64(b[1+8*i:]))
		}
		b = b[1+8*n:]
	default:
		return Totals{}, nil, bad
	}
	return Totals{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13]}, b, nil
}

// ledgerKey is ts(8, unix ms) | seq(8): the seq breaks ties and keeps
// records apart when the clock steps back.
func ledgerKey(tsMillis int64, seq uint64) []byte {
	return putLedgerKey(make([]byte, 16), tsMillis, seq)
}

// putLedgerKey writes ledgerKey's bytes into b (16 bytes) and returns it.
func putLedgerKey(b []byte, tsMillis int64, seq uint64) []byte {
	binary.BigEndian.PutUint64(b, uint64(tsMillis)^(1<<63))
	binary.BigEndian.PutUint64(b[8:], seq)
	return b
}

func ledgerKeyPrefix(tsMillis int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(tsMillis)^(1<<63))
}

// seenKey is a 16-byte digest of a dedupe key: fixed size whatever the key.
func seenKey(dedupeKey string) []byte {
	d := seenDigest(dedupeKey)
	return d[:]
}

func seenDigest(dedupeKey string) [16]byte {
	h := sha256.Sum256([]byte(dedupeKey))
	return [16]byte(h[:16])
}

// sessionKey is source | session id.
func sessionKey(source, sessionID string) []byte {
	return putString(putString(nil, source), sessionID)
}

// Projections of a dimension kept in daily_dims.
const (
	DimModel = 'm' // provider, model
	DimAgent = 'a' // source, agent
	DimUser  = 'u' // user, source, agent
)

// Project keeps the fields of d that a projection kind holds.
func Project(kind byte, d Dim) Dim {
	switch kind {
	case DimModel:
		return Dim{Provider: d.Provider, Model: d.Model}
	case DimAgent:
		return Dim{Source: d.Source, Agent: d.Agent}
	case DimUser:
		return Dim{User: d.User, Source: d.Source, Agent: d.Agent}
	}
	return d
}

// dimKey is kind | day | projected dimension.
func dimKey(kind byte, day int32, d Dim) []byte {
	return append([]byte{kind}, rowKey(day, Project(kind, d))...)
}

// encodeSession is the sessions bucket's value: a version byte, then
// lp(source) lp(id) lp(key) lp(agent) lp(channel), first and last ts (8
// each), a model count (2) and per model lp(name) + Totals, models in name
// order. Binary, not JSON: the session report decodes every session, and
// JSON made that the slowest report by far.
func encodeSession(s *Session) []byte {
	models := make([]modelSums, 0, len(s.Models))
	for name, t := range s.Models {
		models = append(models, modelSums{name, t})
	}
	return appendSession(nil, s, models)
}

// appendSession appends encodeSession's value for s (its Models ignored)
// with models, which it sorts by name: the same session, the same bytes,
// so rebuilds compare equal.
func appendSession(b []byte, s *Session, models []modelSums) []byte {
	b = append(b, 2)
	for _, f := range []string{s.Source, s.SessionID, s.SessionKey, s.Agent, s.Channel} {
		b = putString(b, f)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(s.FirstTS))
	b = binary.BigEndian.AppendUint64(b, uint64(s.LastTS))
	if len(models) > 1 {
		slices.SortFunc(models, func(x, y modelSums) int { return strings.Compare(x.name, y.name) })
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(models)))
	for _, m := range models {
		b = putString(b, m.name)
		b = appendTotals(b, m.t)
	}
	return b
}

func decodeSession(b []byte) (Session, error) {
	var s Session
	if len(b) < 1 || b[0] != 2 {
		return s, errors.New("storage: bad session value")
	}
	rest := b[1:]
	var err error
	for _, f := range []*string{&s.Source, &s.SessionID, &s.SessionKey, &s.Agent, &s.Channel} {
		if *f, rest, err = getString(rest); err != nil {
			return s, err
		}
	}
	if len(rest) < 18 {
		return s, errShortKey
	}
	s.FirstTS = int64(binary.BigEndian.Uint64(rest))
	s.LastTS = int64(binary.BigEndian.Uint64(rest[8:]))
	n := int(binary.BigEndian.Uint16(rest[16:]))
	rest = rest[18:]
	s.Models = make(map[string]Totals, n)
	for range n {
		var name string
		if name, rest, err = getString(rest); err != nil {
			return s, err
		}
		var t Totals
		if t, rest, err = readTotals(rest); err != nil {
			return s, err
		}
		s.Models[name] = t
	}
	return s, nil
}
