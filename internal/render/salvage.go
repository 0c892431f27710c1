package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"

	"mmpbridge/bridge"
)

// maxCause is the longest cause the salvage table shows whole.
const maxCause = 300

// SalvageCause is why an entry was lost, without its key (reports show the
// key beside it).
func SalvageCause(err error) string {
	if err == nil {
		return ""
	}
	var fe *bridge.FormatError
	if errors.As(err, &fe) {
		c := *fe
		c.Key = ""
		return c.Error()
	}
	return err.Error()
}

// SalvageText is the report of bridge.Salvage as mmpconv salvage prints it:
// a line of totals, then a table of what was lost (key, offset, bytes,
// cause). src and dst name the damaged file and the output.
func SalvageText(src, dst string, rep *bridge.SalvageReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: saved %d %s into %s", src, len(rep.Saved), plural(len(rep.Saved), "entry", "entries"), dst)
	if len(rep.Lost) == 0 {
		b.WriteString("; nothing lost")
	} else {
		fmt.Fprintf(&b, "; %d lost", len(rep.Lost))
	}
	if rep.Header != nil {
		b.WriteString(" (header damaged)")
	}
	if !rep.Terminator {
		b.WriteString(" (no terminator)")
	}
	b.WriteString("\n")
	if len(rep.Lost) == 0 {
		return b.String()
	}
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tOFFSET\tBYTES\tCAUSE")
	for _, l := range rep.Lost {
		key := "(bytes)"
		if l.Key != "" {
			key = strconv.Quote(l.Key)
		}
		cause := SalvageCause(l.Err)
		if len(cause) > maxCause {
			cause = strings.ToValidUTF8(cause[:maxCause], "") + "..."
		}
		cause = strings.NewReplacer("\t", " ", "\n", " ").Replace(cause)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", key, l.Offset, l.Size, cause)
	}
	tw.Flush()
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// SalvageJSON is the report of bridge.Salvage as mmpconv salvage --json
// prints it (and libmmp's mmp_salvage returns it), indented, with a final
// newline. A lost range of bytes that is no entry has key null.
func SalvageJSON(src, dst string, rep *bridge.SalvageReport) ([]byte, error) {
	out := salvageJSON{File: src, Output: dst, OK: rep.OK(), Size: rep.Size, HeaderOK: rep.Header == nil,
		Terminator: rep.Terminator, Skipped: rep.Skipped, Replaced: rep.Replaced,
		Saved: []salvagedJSON{}, Lost: []lostJSON{}}
	if rep.Header != nil {
		out.Header = SalvageCause(rep.Header)
	}
	for _, s := range rep.Saved {
		out.Saved = append(out.Saved, salvagedJSON{Key: s.Key, Offset: s.Offset, Size: s.Size})
	}
	for _, l := range rep.Lost {
		j := lostJSON{Offset: l.Offset, Size: l.Size, Cause: SalvageCause(l.Err)}
		if l.Key != "" {
			k := l.Key
			j.Key = &k
		}
		out.Lost = append(out.Lost, j)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	return append(b, '\n'), err
}

type salvageJSON struct {
	File       string         `json:"file"`
	Output     string         `json:"output"`
	OK         bool           `json:"ok"`
	Size       int64          `json:"size"`
	HeaderOK   bool           `json:"header_ok"`
	Header     string         `json:"header,omitempty"`
	Terminator bool           `json:"terminator"`
	Skipped    int            `json:"skipped"`
	Replaced   int            `json:"replaced"`
	Saved      []salvagedJSON `json:"saved"`
	Lost       []lostJSON     `json:"lost"`
}

type salvagedJSON struct {
	Key    string `json:"key"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

type lostJSON struct {
	Key    *string `json:"key"`
	Offset int64   `json:"offset"`
	Size   int64   `json:"size"`
	Cause  string  `json:"cause"`
}
