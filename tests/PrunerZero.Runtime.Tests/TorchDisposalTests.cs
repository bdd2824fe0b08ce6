// A test's finalizer count (TorchGuarded) must belong to that test alone.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace PrunerZero.Runtime.Tests;

/// <summary>No TorchSharp object reaches the finalizer: every test is guarded, and no compiled call leaves a Scalar to it.</summary>
public class TorchDisposalTests : TorchGuarded
{
    [Fact]
    public void EveryTestClassIsGuarded() => Assert.Empty(TorchGuarded.Unguarded(typeof(TorchDisposalTests).Assembly));

    [Fact]
    public void NoCallLeavesAScalarToTheFinalizer()
    {
        var leaks = new[] { typeof(LlamaModel).Assembly, typeof(TorchDisposalTests).Assembly }.SelectMany(ScalarLeakScanner.Leaks).ToList();
        Assert.True(leaks.Count == 0, $"{leaks.Count} call(s) leave a Scalar to the finalizer:\n" + string.Join("\n", leaks));
    }
}
