package bridge

import (
	"math"
	"unicode/utf8"
)

// step: what each opcode does to the stack, the marks and the memo.

// step applies one opcode.
func (m *machine) step(o op) error {
	switch o.Code {
	case opMark:
		if len(m.marks) >= m.lim.MaxDepth*16 {
			return limitErr(o.Off, "more than %d open MARKs", m.lim.MaxDepth*16)
		}
		m.marks = append(m.marks, len(m.stack))
		return nil
	case opStop:
		return structErr(o.Off, "STOP inside a value: plain pickle.load stops reading here")
	case opProto, opFrame:
		if m.stream {
			return nil
		}
		return structErr(o.Off, "%s inside a value", opName(o.Code))
	case opPop:
		if len(m.marks) > 0 && m.marks[len(m.marks)-1] == len(m.stack) {
			m.marks = m.marks[:len(m.marks)-1]
			return nil
		}
		_, err := m.pop(o)
		return err
	case opPopMark:
		_, err := m.popMark(o)
		return err
	case opDup:
		r, err := m.top(o)
		if err != nil {
			return err
		}
		m.stack = append(m.stack, r)
		return nil
	case opNone:
		return m.pushSmall(kNone, 0, o.Off)
	case opNewTrue, opNewFalse:
		return m.pushSmall(kBool, b2i(o.Code == opNewTrue), o.Off)
	case opBinInt, opBinInt1, opBinInt2:
		return m.pushSmall(kInt, o.Int, o.Off)
	case opInt:
		line, err := m.payload(o)
		if err != nil {
			return err
		}
		v, isBool, err := parseIntLine(line)
		if err != nil {
			return fail(o.Off, "INT: %v", err)
		}
		if isBool {
			return m.pushSmall(kBool, v.small, o.Off)
		}
		return m.pushInt(v, o.Off)
	case opLong:
		line, err := m.payload(o)
		if err != nil {
			return err
		}
		v, err := parseLongLine(line)
		if err != nil {
			return fail(o.Off, "LONG: %v", err)
		}
		return m.pushInt(v, o.Off)
	case opLong1, opLong4:
		b, err := m.payload(o)
		if err != nil {
			return err
		}
		return m.pushInt(decodeLong(b), o.Off)
	case opFloat:
		line, err := m.payload(o)
		if err != nil {
			return err
		}
		f, err := parseFloatLine(line)
		if err != nil {
			return fail(o.Off, "FLOAT: %v", err)
		}
		return m.push(node{kind: kFloat, i: int64(math.Float64bits(f)), off: o.Off})
	case opBinFloat:
		return m.push(node{kind: kFloat, i: int64(math.Float64bits(o.Float)), off: o.Off})
	case opShortBinUni, opBinUnicode, opBinUnicode8:
		return m.pushUnicode(o)
	case opUnicode, opString, opBinString, opShortBinString:
		return m.pushText(o)
	case opShortBinBytes, opBinBytes, opBinBytes8:
		return m.push(node{kind: kBytes, i: o.PayloadOff, n: o.PayloadLen, off: o.Off})
	case opByteArray8:
		if err := m.grow(o.Off, o.PayloadLen); err != nil {
			return err
		}
		m.copied(o.PayloadLen)
		return m.push(node{kind: kByteArray, i: o.PayloadOff, n: o.PayloadLen, off: o.Off, flags: fCopied})
	case opEmptyList:
		return m.push(node{kind: kList, off: o.Off})
	case opEmptyTuple:
		return m.push(node{kind: kTuple, nest: 1, off: o.Off})
	case opEmptyDict:
		return m.push(node{kind: kDict, off: o.Off})
	case opEmptySet:
		return m.push(node{kind: kSet, off: o.Off})
	case opTuple1, opTuple2, opTuple3:
		k := int(o.Code-opTuple1) + 1
		if len(m.stack)-m.fence() < k {
			return m.underflow(o)
		}
		items := m.refs(m.stack[len(m.stack)-k:])
		m.stack = m.stack[:len(m.stack)-k]
		return m.pushContainer(kTuple, items, o.Off)
	case opTuple, opList:
		items, err := m.popMark(o)
		if err != nil {
			return err
		}
		k := kTuple
		if o.Code == opList {
			k = kList
		}
		return m.pushContainer(k, items, o.Off)
	case opDict:
		items, err := m.popMark(o)
		if err != nil {
			return err
		}
		if len(items)%2 != 0 {
			return fail(o.Off, "odd number of items for DICT")
		}
		r, err := m.newNode(node{kind: kDict, off: o.Off})
		if err != nil {
			return err
		}
		if err := m.setItems(o, r, items); err != nil {
			return err
		}
		m.stack = append(m.stack, r)
		return nil
	case opFrozenSet:
		items, err := m.popMark(o)
		if err != nil {
			return err
		}
		r, err := m.newNode(node{kind: kFrozenSet, nest: 1, off: o.Off})
		if err != nil {
			return err
		}
		if err := m.addItems(o, r, items); err != nil {
			return err
		}
		m.stack = append(m.stack, r)
		return nil
	case opAppend:
		v, err := m.pop(o)
		if err != nil {
			return err
		}
		t, err := m.top(o)
		if err != nil {
			return err
		}
		return m.appendItems(o, t, []ref{v})
	case opAppends, opSetItems, opAddItems:
		return m.markedUpdate(o)
	case opSetItem:
		v, err := m.pop(o)
		if err != nil {
			return err
		}
		k, err := m.pop(o)
		if err != nil {
			return err
		}
		t, err := m.top(o)
		if err != nil {
			return err
		}
		return m.setItems(o, t, []ref{k, v})
	case opGlobal:
		mod, err := m.lineText(o.PayloadOff, o.PayloadLen, o)
		if err != nil {
			return err
		}
		name, err := m.lineText(o.Payload2, o.Payload2L, o)
		if err != nil {
			return err
		}
		return m.pushGlobal(o, mod, name)
	case opStackGlobal:
		nr, err := m.pop(o)
		if err != nil {
			return err
		}
		mr, err := m.pop(o)
		if err != nil {
			return err
		}
		mod, ok1 := m.str(mr)
		name, ok2 := m.str(nr)
		if !ok1 || !ok2 {
			return fail(o.Off, "STACK_GLOBAL requires str")
		}
		return m.pushGlobal(o, mod, name)
	case opReduce:
		args, err := m.pop(o)
		if err != nil {
			return err
		}
		fn, err := m.pop(o)
		if err != nil {
			return err
		}
		r, err := m.call(o, fn, args)
		if err != nil {
			return err
		}
		m.stack = append(m.stack, r)
		return nil
	case opNewObj, opNewObjEx:
		var kw ref = -1
		var err error
		if o.Code == opNewObjEx {
			if kw, err = m.pop(o); err != nil {
				return err
			}
		}
		args, err := m.pop(o)
		if err != nil {
			return err
		}
		cls, err := m.pop(o)
		if err != nil {
			return err
		}
		r, err := m.newObj(o, cls, args, kw)
		if err != nil {
			return err
		}
		m.stack = append(m.stack, r)
		return nil
	case opObj, opInst:
		items, err := m.popMark(o)
		if err != nil {
			return err
		}
		var cls ref
		if o.Code == opInst {
			mod, err := m.lineText(o.PayloadOff, o.PayloadLen, o)
			if err != nil {
				return err
			}
			name, err := m.lineText(o.Payload2, o.Payload2L, o)
			if err != nil {
				return err
			}
			if err := m.pushGlobal(o, mod, name); err != nil {
				return err
			}
			cls = m.stack[len(m.stack)-1]
			m.stack = m.stack[:len(m.stack)-1]
		} else {
			if len(items) == 0 {
				return fail(o.Off, "OBJ: unpickling stack underflow")
			}
			cls, items = items[0], items[1:]
		}
		r, err := m.instantiate(o, cls, items)
		if err != nil {
			return err
		}
		m.stack = append(m.stack, r)
		return nil
	case opBuild:
		state, err := m.pop(o)
		if err != nil {
			return err
		}
		inst, err := m.top(o)
		if err != nil {
			return err
		}
		return m.build(o, inst, state)
	case opGet, opBinGet, opLongBinGet:
		return m.memoGet(o)
	case opPut, opBinPut, opLongBinPut, opMemoize:
		return m.memoPut(o)
	case opExt1, opExt2, opExt4:
		return fail(o.Off, "%s: unregistered extension code %d", opName(o.Code), o.Int)
	case opPersID, opBinPersID:
		return fail(o.Off, "%s: a persistent id, and pickle.load has no persistent_load", opName(o.Code))
	case opNextBuffer:
		return fail(o.Off, "NEXT_BUFFER: out-of-band data, and pickle.load was given no buffers")
	case opReadOnlyBuffer:
		return m.readOnlyBuffer(o)
	}
	return structErr(o.Off, "unexpected opcode 0x%02x", o.Code)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// payload reads an opcode's payload (a text line, a LONG1 body), bounded.
func (m *machine) payload(o op) ([]byte, error) {
	if err := m.grow(o.Off, o.PayloadLen); err != nil {
		return nil, err
	}
	return m.src.readAt(o.PayloadOff, o.PayloadLen)
}

// lineText decodes a GLOBAL or INST line: UTF-8, strict.
func (m *machine) lineText(off, n int64, o op) (string, error) {
	b, err := m.src.readAt(off, n)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) { // strict: no surrogates either
		return "", fail(o.Off, "%s: module or name is not UTF-8", opName(o.Code))
	}
	return string(b), nil
}

// pushUnicode pushes a BINUNICODE-family string: UTF-8, surrogates allowed.
func (m *machine) pushUnicode(o op) error {
	b, err := m.src.readAt(o.PayloadOff, o.PayloadLen)
	if err != nil {
		return err
	}
	if i := decodeUTF8Pass(b); i >= 0 {
		return fail(o.Off, "'utf-8' codec can't decode byte 0x%02x in position %d", b[i], i)
	}
	return m.push(node{kind: kStr, i: o.PayloadOff, n: o.PayloadLen, off: o.Off})
}

// pushText pushes a string pickle.load decodes from text or ASCII.
func (m *machine) pushText(o op) error {
	b, err := m.payload(o)
	if err != nil {
		return err
	}
	var s string
	switch o.Code {
	case opUnicode:
		s, err = decodeRawUnicodeEscape(b)
	case opString:
		s, err = decodeStringLine(b)
	default:
		s, err = decodeASCII(b)
	}
	if err != nil {
		return fail(o.Off, "%s: %v", opName(o.Code), err)
	}
	return m.push(node{kind: kStr, i: -1, n: int64(len(s)), x: s, off: o.Off})
}
