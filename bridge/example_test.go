package bridge_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"mmpbridge/bridge"
)

// Write a float64 array, then read it back as a zero-copy view.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	name := filepath.Join(dir, "data.mmpkl")

	f, err := bridge.Create(name)
	if err != nil {
		log.Fatal(err)
	}
	dt, _ := bridge.ParseDType("<f8")
	var data bytes.Buffer
	for _, v := range []float64{1, 2, 3, 4, 5, 6} {
		binary.Write(&data, binary.LittleEndian, v)
	}
	if err := f.PutArray("x", bridge.ArrayHeader{DType: dt, Shape: []int{2, 3}}, &data); err != nil {
		log.Fatal(err)
	}
	f.Close()

	g, err := bridge.Open(name)
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	a, err := g.Array("x")
	if err != nil {
		log.Fatal(err)
	}
	v, err := bridge.View[float64](a)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(a.DType, a.Shape, a.Offset%64, v)
	// Output: <f8 [2 3] 0 [1 2 3 4 5 6]
}

// Reserve an array and fill it through a writable mapping, without holding
// it in memory: how converters write large arrays.
func ExampleFile_Reserve() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	f, err := bridge.Create(filepath.Join(dir, "big.mmpkl"))
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	dt, _ := bridge.ParseDType("<i4")
	slot, err := f.Reserve("counts", bridge.ArrayHeader{DType: dt, Shape: []int{1000}})
	if err != nil {
		log.Fatal(err)
	}
	b, err := slot.Bytes()
	if err != nil {
		log.Fatal(err)
	}
	for i := range 1000 {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(i*i))
	}
	if err := slot.Commit(); err != nil {
		log.Fatal(err)
	}
	a, _ := f.Array("counts")
	v, _ := bridge.View[int32](a)
	fmt.Println(len(v), v[999])
	// Output: 1000 998001
}
