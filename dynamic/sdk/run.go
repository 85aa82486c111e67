package sdk

// Option adjusts the Module that Run serves.
type Option[S any] func(*Module[S])

// WithCodec sets the state codec (default JSONCodec[S](1)): give one when
// the state's schema has changed and older states must be migrated.
func WithCodec[S any](c *Codec[S]) Option[S] {
	return func(m *Module[S]) { m.Codec = c }
}

// Run serves behaviour b as the plugin of behaviour `name` at code version
// `version`: the short form of Serve, with S inferred from b.
//
//	func main() {
//		sdk.Run("counter", "1.0.0", sdk.HandlerFunc[state](handle))
//	}
func Run[S any](name, version string, b Behaviour[S], opts ...Option[S]) {
	m := Module[S]{Name: name, Version: version, Behaviour: b}
	for _, o := range opts {
		o(&m)
	}
	Serve(m)
}
