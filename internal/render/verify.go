package render

import (
	"encoding/json"
	"strconv"

	"mmpbridge/bridge"
)

// VerifyJSON is the report of bridge.Verify as mmpconv verify --json prints
// it (and libmmp's mmp_verify returns it), indented, with a final newline.
// quiet leaves out the imports that are allowed.
func VerifyJSON(name string, rep *bridge.VerifyReport, quiet bool) ([]byte, error) {
	out := verifyJSON{File: name, OK: rep.OK(), StructureOK: (len(rep.Structure) == 0), Entries: rep.Entries,
		Deleted: rep.Deleted, Padding: rep.Padding, Index: rep.Index, Imports: rep.Imports, NotAllowed: rep.NotAllowed, Problems: rep.Problems,
		Warnings: rep.Warnings, Omitted: rep.Omitted, CopiedBytes: rep.Copied, MemoSlots: rep.MemoSlots,
		Structure: []verifyProblemJSON{}, Findings: []findingJSON{}}
	for _, p := range rep.Structure {
		out.Structure = append(out.Structure, verifyProblemJSON{Offset: p.Offset, Key: p.Key, Message: p.Error()})
	}
	for _, f := range rep.Findings {
		if quiet && f.Kind == bridge.Import && f.Allowed {
			continue
		}
		j := findingJSON{Kind: findingKinds[f.Kind], Offset: f.Offset, Key: f.Key, Deleted: f.Deleted, Message: f.Msg}
		if f.Entry >= 0 {
			e := f.Entry
			j.Entry = &e
		}
		if f.Kind == bridge.Import {
			a := f.Allowed
			j.Opcode, j.Module, j.Name, j.Allowed = f.Op, ClipName(f.Module), ClipName(f.Name), &a
		}
		out.Findings = append(out.Findings, j)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	return append(b, '\n'), err
}

// maxShownName is the longest module or name a report shows whole.
const maxShownName = 200

// ClipName is a global's module or name as reports show it: whole up to
// 200 bytes, else its first 200 bytes and its length ("mmm...(20000
// bytes)"). A long name shared through the memo can be imported at each of
// thousands of uses, each a finding.
func ClipName(s string) string {
	if len(s) <= maxShownName {
		return s
	}
	return s[:maxShownName] + "...(" + strconv.Itoa(len(s)) + " bytes)"
}

type verifyJSON struct {
	File        string              `json:"file"`
	OK          bool                `json:"ok"`
	StructureOK bool                `json:"structure_ok"`
	Entries     int                 `json:"entries"`
	Deleted     int                 `json:"deleted"`
	Padding     int                 `json:"padding"`
	Index       int                 `json:"index"`
	Imports     int                 `json:"imports"`
	NotAllowed  int                 `json:"not_allowed"`
	Problems    int                 `json:"problems"`
	Warnings    int                 `json:"warnings"`
	Omitted     int                 `json:"omitted,omitempty"`
	CopiedBytes int64               `json:"copied_bytes"`
	MemoSlots   int64               `json:"memo_slots"`
	Structure   []verifyProblemJSON `json:"structure_errors"`
	Findings    []findingJSON       `json:"findings"`
}

type verifyProblemJSON struct {
	Offset  int64  `json:"offset"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
}

type findingJSON struct {
	Kind    string `json:"kind"` // import, not-plain, fails, shared-memo, warning
	Offset  int64  `json:"offset"`
	Entry   *int64 `json:"entry_offset"` // null outside any entry
	Key     string `json:"key"`
	Deleted bool   `json:"deleted"`
	Opcode  string `json:"opcode,omitempty"`
	Module  string `json:"module,omitempty"`
	Name    string `json:"name,omitempty"`
	Allowed *bool  `json:"allowed,omitempty"` // imports only
	Message string `json:"message,omitempty"`
}

var findingKinds = map[bridge.FindingKind]string{
	bridge.Import: "import", bridge.NotPlain: "not-plain", bridge.Fails: "fails",
	bridge.SharedMemo: "shared-memo", bridge.Warning: "warning",
}
