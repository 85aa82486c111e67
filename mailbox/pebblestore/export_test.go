package pebblestore

// MountTmpfs lets the external tests mount a real tmpfs.
var MountTmpfs = mountTmpfs
