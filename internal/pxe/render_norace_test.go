//go:build !race

package pxe

const raceEnabled = false
