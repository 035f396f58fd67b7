package corpus

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The transcript writer is JavaScript: pi persists every entry with
// JSON.stringify. encoding/json differs from it in ways an ingester can
// trip on (it escapes <, > and &, orders map keys, and prints 1.2e-05 where
// JavaScript prints 0.000012), so lines are assembled by hand with the keys
// in pi's order and the helpers below reproduce JSON.stringify's output.

// appendStr appends s as a JSON string the way JSON.stringify does: only ",
// \ and control characters are escaped; non-ASCII text is written as is.
func appendStr(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendNum appends f as JavaScript's Number.prototype.toString would:
// shortest round-trip digits (as Go's -1 precision), plain notation for
// 1e-6 <= |f| < 1e21, otherwise exponent notation without zero padding
// ("1.5e-7", not "1.5e-07").
func appendNum(b []byte, f float64) []byte {
	if f == 0 {
		return append(b, '0')
	}
	a := f
	if a < 0 {
		a = -a
	}
	if a >= 1e-6 && a < 1e21 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	s := strconv.FormatFloat(f, 'e', -1, 64)
	mant, exp, _ := strings.Cut(s, "e")
	sign := exp[0]
	exp = strings.TrimLeft(exp[1:], "0")
	b = append(b, mant...)
	b = append(b, 'e', sign)
	return append(b, exp...)
}

func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// isoMillis formats t as new Date().toISOString() does: UTC, milliseconds, Z.
func isoMillis(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// fileStamp is the ISO timestamp made safe for file names. OpenClaw's
// archives replace only ':' (2026-04-10T07-59-59.912Z); pi's fork files
// replace '.' too (2026-04-10T07-59-59-912Z).
func fileStamp(t time.Time, dots bool) string {
	s := strings.ReplaceAll(isoMillis(t), ":", "-")
	if dots {
		s = strings.ReplaceAll(s, ".", "-")
	}
	return s
}

// clipRunes shortens s to at most n bytes without splitting a UTF-8 sequence.
func clipRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
