package convert

import (
	"archive/zip"
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"mmpbridge/bridge"
)

// Masked arrays in .npz archives. numpy's np.savez keeps only a masked
// array's data; mmpconv writes the whole array as up to three members,
// which it reads back as one masked array:
//
//	KEY.npy             the data
//	KEY.mask.npy        the mask: bool, the data's shape and order
//	KEY.fill_value.npy  the fill value: a 0-d array of the data's dtype
//	                    (absent: numpy's default applies)
//
// A KEY.mask.npy that is not such a mask leaves both members plain arrays;
// so does a KEY.fill_value.npy without a mask.

// npzUnit is one key of the output: a member, or a masked array's members.
type npzUnit struct {
	data, mask, fill *npzMember
}

// npzUnits groups members into keys, in the archive order of their data
// (a mask may come before its data in the archive).
func npzUnits(members []*npzMember) []npzUnit {
	byKey := make(map[string]*npzMember, len(members))
	for _, m := range members {
		byKey[m.key] = m
	}
	claimed := map[*npzMember]*npzUnit{}
	units := make([]npzUnit, len(members))
	for i, m := range members {
		units[i].data = m
		if strings.HasSuffix(m.key, ".mask") || strings.HasSuffix(m.key, ".fill_value") {
			continue // members of another key, or plain arrays
		}
		if mk := byKey[m.key+".mask"]; mk != nil && isMaskFor(mk, m) {
			units[i].mask = mk
			claimed[mk] = &units[i]
			if f := byKey[m.key+".fill_value"]; f != nil && isFillFor(f, m) {
				units[i].fill = f
				claimed[f] = &units[i]
			}
		}
	}
	out := units[:0]
	for _, u := range units {
		if claimed[u.data] == nil {
			out = append(out, u)
		}
	}
	return out
}

func isMaskFor(mask, data *npzMember) bool {
	return mask.h.DType.Kind == 'b' && mask.h.DType.ItemSize == 1 && slices.Equal(mask.h.Shape, data.h.Shape) &&
		fortranFlag(mask.h.Shape, mask.h.Fortran) == fortranFlag(data.h.Shape, data.h.Fortran) &&
		!data.transpose && !mask.transpose
}

// isFillFor: one element of the data's dtype, small enough to read into
// memory (the header's item size is the file's word: a forged one must not
// make the reader allocate it).
func isFillFor(fill, data *npzMember) bool {
	return len(fill.h.Shape) == 0 && fill.h.DType == data.h.DType && fill.h.NBytes <= maxFillBytes
}

const maxFillBytes = 1 << 16

// npzPut stores the units in archive order: runs of plain members through
// npzFill (on all cores), masked arrays one at a time.
func npzPut(ctx context.Context, src string, out *bridge.File, units []npzUnit, opt *Options, p *progress) error {
	var run []*npzMember
	flush := func() error {
		err := npzFill(ctx, src, out, run, opt, p)
		run = run[:0]
		return err
	}
	for _, u := range units {
		if u.mask == nil {
			run = append(run, u.data)
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		if err := npzPutMasked(ctx, src, out, u, p); err != nil {
			return err
		}
	}
	return flush()
}

// npzPutMasked streams a masked array's data and mask members into the
// output, their CRC-32s checked.
func npzPutMasked(ctx context.Context, src string, out *bridge.File, u npzUnit, p *progress) error {
	var fill []byte
	if u.fill != nil {
		rc, err := openMember(u.fill)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", src, u.fill.name, err)
		}
		fill = make([]byte, u.fill.h.NBytes)
		_, err = io.ReadFull(rc, fill)
		if err == nil {
			err = finishData(rc)
		}
		rc.Close()
		if err != nil {
			return fmt.Errorf("%s: %s: %w", src, u.fill.name, eofUnexpected(err))
		}
		p.add(int64(len(fill)))
	}
	data, err := openMember(u.data)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", src, u.data.name, err)
	}
	defer data.Close()
	mask, err := openMember(u.mask)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", src, u.mask.name, err)
	}
	defer mask.Close()
	dr := &ctxReader{ctx: ctx, r: p.reader(io.LimitReader(data, u.data.h.NBytes))}
	mr := &ctxReader{ctx: ctx, r: p.reader(io.LimitReader(mask, u.mask.h.NBytes))}
	if err := out.PutMasked(u.data.key, u.data.h.array(), dr, mr, fill); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s: %s: %w", src, u.data.name, eofUnexpected(err))
	}
	// The CRC-32s are checked at each member's end; a mismatch undoes the
	// key.
	for _, m := range []struct {
		rc io.Reader
		m  *npzMember
	}{{data, u.data}, {mask, u.mask}} {
		if err := finishData(m.rc); err != nil {
			out.Delete(u.data.key)
			return fmt.Errorf("%s: %s: %w", src, m.m.name, err)
		}
	}
	return nil
}

// openMember opens a member, stored or deflated, positioned at its array
// data; its CRC-32 and size are checked when it is read to its end.
func openMember(m *npzMember) (io.ReadCloser, error) {
	if m.f.Method == zip.Deflate {
		return openData(m)
	}
	raw, err := m.f.OpenRaw()
	if err != nil {
		return nil, err
	}
	rc := &memberReader{r: bufio.NewReaderSize(raw, pieceSize), c: io.NopCloser(nil), f: m.f}
	if _, err := io.CopyN(io.Discard, rc, m.h.DataOff); err != nil {
		return nil, eofUnexpected(err)
	}
	return rc, nil
}
