using PrunerZero.Runtime;
using static TorchSharp.torch;

namespace PrunerZero.Runtime.Tests;

public class ForwardTests : TorchGuarded
{
    static readonly int[] Ids = [256, 5, 77, 12, 199, 3, 3, 150, 42, 299, 0, 17];

    [Theory]
    [InlineData(false, "float32", 2)]   // GQA, untied head
    [InlineData(true, "float32", 2)]    // GQA, tied head
    [InlineData(false, "float16", 4)]   // plain multi-head, F16 file
    [InlineData(true, "bfloat16", 1)]   // multi-query, BF16 file
    public void ForwardMatchesPlainMath(bool tied, string dtype, int kvHeads)
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(tied, dtype, kvHeads: kvHeads), seed: 7);
        using var model = Checkpoint.Load(dir);
        Assert.Equal(tied, ReferenceEquals(model.Embed, model.LmHead));
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var logits = model.Forward(tensor(Ids.Select(i => (long)i).ToArray(), [1, Ids.Length]));
        var got = TestCheckpoints.Floats(logits);
        var want = new PlainLlama(model).Logits(Ids);
        AssertLogitsClose(got, want, model.Config.VocabSize, "llama");
    }

    /// <summary>Logits (positions × vocab, row-major) within 1e-4 · max(1, max |logit|) of the plain computation, which is not trivially small.</summary>
    internal static void AssertLogitsClose(float[] got, double[][] want, int vocab, string what)
    {
        double maxErr = 0, maxAbs = 0;
        for (int p = 0; p < want.Length; p++)
            for (int j = 0; j < vocab; j++)
            {
                maxErr = Math.Max(maxErr, Math.Abs(got[p * vocab + j] - want[p][j]));
                maxAbs = Math.Max(maxAbs, Math.Abs(want[p][j]));
            }
        Assert.True(maxAbs > 0.1, "logits should not be trivially small");
        Assert.True(maxErr < 1e-4 * Math.Max(1, maxAbs), $"{what}: max |logit error| {maxErr} (max |logit| {maxAbs})");
    }

    [Fact]
    public void NextTokenNllMatchesPlainMath()
    {
        using var testScope = NewDisposeScope();
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(), seed: 3);
        using var model = Checkpoint.Load(dir);
        using var _ = no_grad();
        var (sum, count) = model.NextTokenNll(tensor(Ids.Select(i => (long)i).ToArray(), [1, Ids.Length]));
        Assert.Equal(Ids.Length - 1, count);
        Assert.Equal(new PlainLlama(model).SumNll(Ids), sum, 3);
    }

    [Fact]
    public void SavedModelReloadsIdentically()
    {
        string dir = TestCheckpoints.Write(TestCheckpoints.Config(dtype: "bfloat16"), seed: 5);
        using var model = Checkpoint.Load(dir);
        string outDir = TestCheckpoints.TempDir("saved");
        Checkpoint.Save(model, outDir, dir, ScalarType.BFloat16);
        using var again = Checkpoint.Load(outDir);
        foreach (var ((n1, t1), (n2, t2)) in model.NamedTensors().Zip(again.NamedTensors()))
        {
            Assert.Equal(n1, n2);
            Assert.True(t1.allclose(t2, 0, 0), $"{n1} changed in a bf16 round trip");
        }
        Assert.True(File.Exists(Path.Combine(outDir, "tokenizer.json")));
        var (entries, _) = SafeTensors.ReadHeader(Path.Combine(outDir, "model.safetensors"));
        Assert.All(entries, e => Assert.Equal("BF16", e.DType));
    }
}
