package sdk

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type order struct {
	Item string `json:"item"`
	Qty  int    `json:"qty"`
}

type stock struct {
	Sold map[string]int `json:"sold"`
}

// A typed handler sees decoded messages and answers with typed replies and
// sends; a payload of the wrong shape fails that message alone.
func TestJSONHandlerDecodesAndEncodes(t *testing.T) {
	h := JSONHandler(func(ctx *Context, s stock, o order, _ Message) (stock, error) {
		if s.Sold == nil {
			s.Sold = map[string]int{}
		}
		s.Sold[o.Item] += o.Qty
		if err := SendJSON(ctx, "ledger", o); err != nil {
			return s, err
		}
		return s, ReplyJSON(ctx, map[string]int{o.Item: s.Sold[o.Item]})
	})
	msg := Message{Seq: 7, Sender: "shop", Payload: []byte(`{"item":"tea","qty":2}`)}
	ctx := &Context{Context: context.Background(), actor: "stock", msg: &msg}
	s, err := h(ctx, stock{}, msg)
	require.NoError(t, err)
	assert.Equal(t, 2, s.Sold["tea"])
	assert.JSONEq(t, `{"tea":2}`, string(ctx.reply))
	require.Len(t, ctx.out, 1)
	assert.Equal(t, "ledger", ctx.out[0].To)
	assert.JSONEq(t, `{"item":"tea","qty":2}`, string(ctx.out[0].Payload))

	bad := Message{Seq: 8, Sender: "shop", Payload: []byte(`not json`)}
	_, err = h(&Context{Context: context.Background(), actor: "stock", msg: &bad}, s, bad)
	require.Error(t, err)
	assert.ErrorContains(t, err, "message 8 from \"shop\" is not a sdk.order in JSON")
}
