using PrunerZero.Kernels;

namespace PrunerZero.Kernels.Tests;

public class ExprTests
{
    [Theory]
    [InlineData("W")]
    [InlineData("mul(abs(mul(W, W)), mms(G))")]
    [InlineData("pdiv(sub(X, G), div(tanh(W), zsn(log(G))))")]
    [InlineData("add(pow(skp(neg(W))), exp(sqrt(X)))")]
    public void PrintParseRoundTrip(string text)
    {
        var e = MetricParser.Parse(text);
        Assert.Equal(text, e.ToString());
        Assert.Equal(e, MetricParser.Parse(e.ToString()));
    }

    [Fact]
    public void ParserToleratesWhitespaceAndCase()
    {
        var e = MetricParser.Parse("  MUL ( Sqr(w) ,\tmms( g ) ) ");
        Assert.Equal("mul(sqr(W), mms(G))", e.ToString());
        Assert.Equal(Metrics.PrunerZero, e);
    }

    [Theory]
    [InlineData("mul(W G)", 6, "expected ','")]
    [InlineData("sqr(W, G)", 5, "expected ')'")]
    [InlineData("mul(W, )", 7, "expected a terminal")]
    [InlineData("foo(W)", 0, "unknown name 'foo'")]
    [InlineData("sqr W", 4, "expected '('")]
    [InlineData("W)", 1, "expected end of input")]
    [InlineData("mul(W, G", 8, "end of input")]
    [InlineData("", 0, "expected a terminal")]
    public void ParseErrorsCarryPosition(string text, int pos, string fragment)
    {
        var ex = Assert.Throws<MetricParseException>(() => MetricParser.Parse(text));
        Assert.Equal(pos, ex.Position);
        Assert.Contains(fragment, ex.Message);
        Assert.StartsWith($"at {pos}:", ex.Message);
    }

    [Fact]
    public void NamedMetricsResolve()
    {
        Assert.Equal("W", Metrics.Resolve("magnitude").ToString());
        Assert.Equal("mul(W, sqrt(X))", Metrics.Resolve("wanda").ToString());
        Assert.Equal("mul(sqr(W), mms(G))", Metrics.Resolve("Pruner-Zero").ToString());
        Assert.Equal("add(W, G)", Metrics.Resolve("add(W, G)").ToString());
        Assert.False(Metrics.Magnitude.UsesG || Metrics.Magnitude.UsesX);
        Assert.True(Metrics.Wanda.UsesX && !Metrics.Wanda.UsesG);
        Assert.True(Metrics.PrunerZero.UsesG && !Metrics.PrunerZero.UsesX);
    }

    [Fact]
    public void DepthSizeEqualityAndHash()
    {
        var a = MetricParser.Parse("mul(sqr(W), mms(G))");
        var b = Expr.Binary(Op.Mul, Expr.Unary(Op.Sqr, Expr.W), Expr.Unary(Op.Mms, Expr.G));
        Assert.Equal(3, a.Depth);
        Assert.Equal(5, a.Size);
        Assert.Equal(1, Expr.W.Depth);
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, MetricParser.Parse("mul(pow(W), mms(G))"));
        Assert.NotEqual(MetricParser.Parse("sub(W, G)"), MetricParser.Parse("sub(G, W)"));
    }

    [Fact]
    public void PreorderAndReplaceAt()
    {
        var e = MetricParser.Parse("mul(sqr(W), mms(G))");
        var nodes = e.Preorder();
        Assert.Equal(["mul(sqr(W), mms(G))", "sqr(W)", "W", "mms(G)", "G"], nodes.Select(n => n.Node.ToString()));
        Assert.Equal([0, 1, 2, 1, 2], nodes.Select(n => n.Level));
        for (int i = 0; i < e.Size; i++) Assert.Equal(nodes[i].Node, e.NodeAt(i));
        Assert.Equal("mul(sqr(W), mms(zsn(X)))", e.ReplaceAt(4, MetricParser.Parse("zsn(X)")).ToString());
        Assert.Equal("mul(G, mms(G))", e.ReplaceAt(1, Expr.G).ToString());
        Assert.Equal("X", e.ReplaceAt(0, Expr.X).ToString());
        Assert.Equal("mul(sqr(W), mms(G))", e.ToString()); // immutable
        Assert.Throws<ArgumentOutOfRangeException>(() => e.ReplaceAt(5, Expr.W));
    }

    [Fact]
    public void OperatorTables()
    {
        Assert.Equal(3, Ops.Terminals.Count);
        Assert.Equal(11, Ops.Unary.Count);
        Assert.Equal(5, Ops.Binary.Count);
        Assert.All(Ops.Unary, o => Assert.Equal(1, Ops.Arity(o)));
        Assert.All(Ops.Binary, o => Assert.Equal(2, Ops.Arity(o)));
        Assert.All(Ops.All, o => { Assert.True(Ops.TryParse(Ops.Name(o), out var p)); Assert.Equal(o, p); });
        Assert.Throws<ArgumentException>(() => Expr.Unary(Op.Mul, Expr.W));
        Assert.Throws<ArgumentException>(() => Expr.Binary(Op.Sqr, Expr.W, Expr.G));
    }

    static string Nested(string open, int n, string close) =>
        string.Concat(Enumerable.Repeat(open, n)) + "W" + string.Concat(Enumerable.Repeat(close, n));

    [Fact]
    public void DepthLimitIsEnforcedByTheParserWithoutRecursingPastIt()
    {
        // At the limit: parses, prints and parses back, scores like the reference.
        var deepest = MetricParser.Parse(Nested("sqrt(", Expr.MaxDepth - 1, ")"));
        Assert.Equal(Expr.MaxDepth, deepest.Depth);
        Assert.Equal(deepest, MetricParser.Parse(deepest.ToString()));
        var (w, g, x) = TestData.Random(3, 17, 4);
        TestData.AssertClose(ReferenceScorer.Score(deepest, w, g, x, 3, 17), TestData.Fused(deepest, w, g, x, 3, 17), 1e-5, "depth 64");

        // One level more, and far more (a recursive parser would overflow the stack at 25,000 or 1,000,000).
        foreach (var n in new[] { Expr.MaxDepth, 25_000, 1_000_000 })
        {
            var ex = Assert.Throws<MetricParseException>(() => MetricParser.Parse(Nested("abs(", n, ")")));
            Assert.Contains($"nested deeper than {Expr.MaxDepth}", ex.Message);
            Assert.Equal(4 * Expr.MaxDepth, ex.Position);   // the first name past the limit
            Assert.True(ex.Message.Length < 400, "the message quotes an excerpt, not the whole input");
        }
        var bin = Assert.Throws<MetricParseException>(() => MetricParser.Parse(Nested("mul(", 5000, ", W)")));
        Assert.Contains("nested deeper", bin.Message);
    }

    [Fact]
    public void TreesBuiltInCodeCannotExceedTheLimitsEither()
    {
        var e = Expr.W;
        for (int i = 1; i < Expr.MaxDepth; i++) e = Expr.Unary(Op.Abs, e);
        Assert.Equal(Expr.MaxDepth, e.Depth);
        Assert.Throws<ExprTooLargeException>(() => Expr.Unary(Op.Abs, e));
        Assert.Throws<ExprTooLargeException>(() => Expr.Binary(Op.Add, Expr.G, e));

        // Size: a balanced tree of height 11 (4095 nodes) is allowed; joining two of them is not.
        var big = Expr.W;
        for (int h = 0; h < 11; h++) big = Expr.Binary(Op.Add, big, big);
        Assert.Equal(4095, big.Size);
        Assert.Throws<ExprTooLargeException>(() => Expr.Binary(Op.Mul, big, big));
        var text = Assert.Throws<MetricParseException>(() => MetricParser.Parse($"mul({big}, {big})"));
        Assert.Contains($"at most {Expr.MaxSize}", text.Message);
    }
}
