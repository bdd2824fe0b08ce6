namespace PrunerZero.Cli.Tests;

/// <summary>
/// No TorchSharp object reaches the finalizer: every test is guarded (<see cref="TorchGuarded"/>), no compiled call of
/// the application, its libraries or these tests leaves a Scalar to it, and every verb run in-process ends with no
/// live tensor it made (<see cref="CliRunner"/>).
/// </summary>
public class TorchDisposalTests : TorchGuarded
{
    [Fact]
    public void EveryTestClassIsGuarded() => Assert.Empty(TorchGuarded.Unguarded(typeof(TorchDisposalTests).Assembly));

    [Fact]
    public void NoCallLeavesAScalarToTheFinalizer()
    {
        var assemblies = new[]
        {
            typeof(Program).Assembly, typeof(Runtime.LlamaModel).Assembly, typeof(Search.SearchRun).Assembly,
            typeof(Cluster.ClusterFitness).Assembly, typeof(Workflows.PruningFitness).Assembly, typeof(TorchDisposalTests).Assembly,
        };
        var leaks = assemblies.Concat(BenchAssemblies()).SelectMany(ScalarLeakScanner.Leaks).ToList();
        Assert.True(leaks.Count == 0, $"{leaks.Count} call(s) leave a Scalar to the finalizer:\n" + string.Join("\n", leaks));
    }

    /// <summary>
    /// bench/'s programs, built by the same solution build in the same configuration (tests/X/bin/CONFIG/TFM/ →
    /// bench/Y/bin/CONFIG/TFM/); a missing one fails the test rather than being skipped.
    /// </summary>
    static IEnumerable<System.Reflection.Assembly> BenchAssemblies()
    {
        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        string tfm = here.Name, config = here.Parent!.Name;
        var root = here.Parent!.Parent!.Parent!.Parent!.Parent!;   // tfm, config, bin, project, tests
        foreach (var (project, assembly) in new[] { ("PrunerZero.Bench", "pz-bench"), ("PrunerZero.Bench.Reference", "pz-bench-reference") })
        {
            string dll = Path.Combine(root.FullName, "bench", project, "bin", config, tfm, assembly + ".dll");
            Assert.True(File.Exists(dll), $"{dll} is missing: build the solution (it includes bench/) before the tests");
            yield return System.Reflection.Assembly.LoadFrom(dll);
        }
    }
}
