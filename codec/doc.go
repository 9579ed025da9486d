// Package codec reads, writes and converts ISO 8583 messages: dialects,
// framing, a zero-allocation decoder and scanner, conversion maps between
// dialects, and a masked dump for people.
//
// A Dialect is one wire format: a Layout (MTI version digit; MTI in ASCII
// or BCD; bitmap in hex or binary) and a table of field definitions (class,
// length, length prefix in ASCII, BCD or binary, content in ASCII, BCD,
// binary or hex, masking, echo). The table is the single source for two
// codecs: this package's Message, which the switch runs on, and the
// moov-io/iso8583 MessageSpec returned by Dialect.Spec, the reference
// encoder that tests and fuzz targets hold Message and Scan to. Built in:
// ISO87ASCII (POS, kiosk, web, hotline), ISO87Binary (banks, internal
// links) and ISO93ASCII (a 1993 bank). LoadSpec builds more from moov-io
// JSON or YAML spec files; ExportSpec writes one as a template.
//
// Data enters as bytes: a FrameReader cuts a stream into frames (a 2-byte
// binary, 4-digit ASCII or 2-byte BCD length, then an optional fixed header
// such as a TPDU), Message.Unpack decodes a frame, Dialect.Scan reads only
// the fields routing and matching need into a fixed struct. It leaves as
// bytes: AppendFrame packs a message behind its length and header. Field
// content inside a Message is canonical (ASCII text and digits, raw bytes
// for binary fields) whatever the wire encoding, so that messages of
// dialects with the same layout differ only in how they are packed.
//
// A Map converts between dialects whose layouts differ (1993 and 1987):
// per destination field a declarative rule (copy, slice, constant, derived
// value, table, fit, drop, restore on the response). Maps are YAML files;
// two ship in maps/. Loading a map refuses one that would silently copy a
// field the dialects define differently.
//
// Errors never carry field content, only the field number and the reason,
// because content may be a PAN. Describe and MaskPAN are the only ways this
// package renders content, and they mask by the field's definition.
//
// Not here: routing, matching and any decision about what a message means
// (package switch), network I/O (package front).
package codec
