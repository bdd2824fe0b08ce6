using PrunerZero.Kernels;

namespace PrunerZero.Kernels.Tests;

/// <summary>One ILGPU CPU accelerator for the class: it is an emulator, so inputs stay at a few hundred elements.</summary>
public sealed class IlgpuFixture : IDisposable
{
    public IlgpuBackend Backend { get; } = IlgpuBackend.Create(preferCuda: false);
    public void Dispose() => Backend.Dispose();
}

public class IlgpuTests(IlgpuFixture fx) : IClassFixture<IlgpuFixture>
{
    [Theory]
    [InlineData("mul(sqr(W), mms(G))")]
    [InlineData("mul(W, sqrt(X))")]
    [InlineData("W")]
    [InlineData("add(zsn(mul(W, X)), div(G, sub(W, X)))")]
    [InlineData("pdiv(tanh(mul(W, X)), add(log(G), exp(neg(X))))")]
    [InlineData("pow(abs(skp(sub(W, G))))")]
    public void ScoreMatchesReference(string text)
    {
        var e = MetricParser.Parse(text);
        var (w, g, x) = TestData.Random(6, 37, 21);
        var s = new float[w.Length];
        fx.Backend.Score(e, w, e.UsesG ? g : [], e.UsesX ? x : [], 6, 37, s);
        TestData.AssertClose(ReferenceScorer.Score(e, w, g, x, 6, 37), s, 1e-5, $"ilgpu {text}");
    }

    [Fact]
    public void DegenerateInputsMatchCpu()
    {
        var w = Enumerable.Range(0, 40).Select(i => (float)(i - 20)).ToArray();
        var g = new float[40];
        foreach (var text in new[] { "mms(G)", "zsn(G)", "div(W, G)" })
        {
            var e = MetricParser.Parse(text);
            var s = new float[40];
            fx.Backend.Score(e, w, g, [], 4, 10, s);
            Assert.Equal(TestData.Fused(e, w, g, [], 4, 10), s);
        }
    }

    [Fact]
    public void MasksMatchCpu()
    {
        var rng = new Random(22);
        var s = Enumerable.Range(0, 8 * 48).Select(_ => rng.Next(12) == 0 ? float.NaN : (rng.Next(9) - 4) * 0.5f).ToArray();
        foreach (var sp in new[] { 0.0, 0.3, 0.5, 1.0 })
        {
            var cpu = new byte[s.Length]; var gpu = new byte[s.Length];
            Masks.Unstructured(s, 8, 48, sp, cpu);
            fx.Backend.MaskUnstructured(s, 8, 48, sp, gpu);
            Assert.Equal(cpu, gpu);
        }
        var cpuNM = new byte[s.Length]; var gpuNM = new byte[s.Length];
        Masks.NM(s, 8, 48, 2, 4, cpuNM);
        fx.Backend.MaskNM(s, 8, 48, 2, 4, gpuNM);
        Assert.Equal(cpuNM, gpuNM);
    }

    /// <summary>Whether this machine has a CUDA device, asked of ILGPU's device list directly (not through the back end).</summary>
    static bool MachineHasCuda()
    {
        try
        {
            using var ctx = ILGPU.Context.Create(b => b.AllAccelerators());
            return ctx.Devices.Any(d => d.AcceleratorType == ILGPU.Runtime.AcceleratorType.Cuda);
        }
        catch (Exception e) when (e is not OutOfMemoryException) { return false; }   // no CUDA runtime at all
    }

    [Fact]
    public void CudaRequestFailsClearlyWithoutGpuAndWorksWithOne()
    {
        if (MachineHasCuda())
        {
            using var b = IlgpuBackend.Create(preferCuda: true);
            Assert.StartsWith("ilgpu-cuda", b.Name);
            // And it computes: the same scores as the reference.
            var e = MetricParser.Parse("mul(sqr(W), mms(G))");
            var (w, g, x) = TestData.Random(6, 37, 5);
            var s = new float[w.Length];
            b.Score(e, w, g, [], 6, 37, s);
            TestData.AssertClose(ReferenceScorer.Score(e, w, g, x, 6, 37), s, 1e-5, "cuda");
        }
        else
        {
            // Never a silent fallback to the CPU accelerator: an exception naming CUDA.
            var ex = Assert.Throws<InvalidOperationException>(() => IlgpuBackend.Create(preferCuda: true).Dispose());
            Assert.Contains("CUDA", ex.Message);
        }
    }

    [Theory]
    [InlineData("mul(sqr(W), mms(G))")]
    [InlineData("pdiv(tanh(mul(W, X)), add(log(G), exp(zsn(X))))")]
    public void CompilesToPtxWithoutGpu(string text)
    {
        var ptx = IlgpuBackend.CompilePtx(MetricParser.Parse(text));
        Assert.Contains(".entry", ptx);
        Assert.Contains(".target sm_70", ptx);
    }
}
