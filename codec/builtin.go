package codec

import "sort"

// Builtin returns a built-in dialect by name: iso87ascii, iso87binary,
// iso93ascii.
func Builtin(name string) (*Dialect, bool) {
	build, ok := builtins()[name]
	if !ok {
		return nil, false
	}
	return build(), true
}

// BuiltinNames lists the built-in dialects.
func BuiltinNames() []string {
	var names []string
	for n := range builtins() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func builtins() map[string]func() *Dialect {
	return map[string]func() *Dialect{
		"iso87ascii":  ISO87ASCII,
		"iso87binary": ISO87Binary,
		"iso93ascii":  ISO93ASCII,
	}
}
