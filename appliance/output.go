package appliance

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/fleetmeter/fleetmeter/rollup"

	"golang.org/x/term"
)

// termWidth is the width tables are laid out for: $COLUMNS when set, else
// the terminal's, else 0 (no limit: a pipe or a file gets every column).
func termWidth(env *cliEnv) int {
	if n, err := strconv.Atoi(env.getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	if f, ok := env.stdout.(*os.File); ok && isTerminal(f) {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			return w
		}
	}
	return 0
}

// writeCSV writes a slice of structs as CSV: a header of the JSON names
// (embedded structs inline, as in the JSON), then one line per element.
// Lists are joined with ";". A text cell that a spreadsheet would take for
// a formula (=, +, -, @) gets a leading ' (names are untrusted text).
func writeCSV(w io.Writer, rows any) error {
	v := reflect.ValueOf(rows)
	if v.Kind() != reflect.Slice {
		return fmt.Errorf("csv: %T is not a list of rows", rows)
	}
	t := v.Type().Elem()
	var head []string
	var paths [][]int
	var walk func(t reflect.Type, path []int)
	walk = func(t reflect.Type, path []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			p := append(append([]int{}, path...), i)
			switch {
			case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
				walk(f.Type, p)
			case !f.IsExported() || name == "-":
			default:
				if name == "" {
					name = f.Name
				}
				head = append(head, name)
				paths = append(paths, p)
			}
		}
	}
	walk(t, nil)
	cw := csv.NewWriter(w)
	if err := cw.Write(head); err != nil {
		return err
	}
	for i := 0; i < v.Len(); i++ {
		row := make([]string, len(paths))
		for j, p := range paths {
			row[j] = csvCell(v.Index(i).FieldByIndex(p))
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func csvCell(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return ""
		}
		return csvCell(v.Elem())
	case reflect.String:
		s := v.String()
		if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
			s = "'" + s
		}
		return s
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = csvCell(v.Index(i))
		}
		return strings.Join(parts, ";")
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'f', -1, 64)
	case reflect.Struct:
		if s, ok := v.Interface().(fmt.Stringer); ok {
			return s.String()
		}
	}
	return fmt.Sprint(v.Interface())
}

// plural is "1 file", "2 files" (n with thousands separators; what's
// plural is what+"s").
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return rollup.Count(int64(n)) + " " + what + "s"
}
