// The machine a result came from, as RESULTS.md states it: date, cores, CPU model, memory, OS, .NET.
using System.Runtime.InteropServices;

namespace PrunerZero.Bench;

public static class MachineInfo
{
    public static string CpuModel()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
                if (line.StartsWith("model name", StringComparison.Ordinal))
                    return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return RuntimeInformation.ProcessArchitecture.ToString();
    }

    public static string MemoryTotal()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal)
                    && long.TryParse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], out long kb))
                    return $"{kb / (1024.0 * 1024.0):F0} GiB";
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return "unknown";
    }

    public static IEnumerable<string> Lines()
    {
        yield return $"Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC";
        yield return $"Machine: {Environment.ProcessorCount} logical cores, CPU \"{CpuModel()}\" (/proc/cpuinfo), {MemoryTotal()} RAM, " +
                     $"AVX2 {(System.Runtime.Intrinsics.X86.Avx2.IsSupported ? "yes" : "no")}, AVX-512F {(System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? "yes" : "no")}";
        yield return $"OS: {RuntimeInformation.OSDescription}";
        yield return $".NET: {RuntimeInformation.FrameworkDescription} ({RuntimeInformation.RuntimeIdentifier})";
        yield return $"BenchmarkDotNet: {typeof(BenchmarkDotNet.Running.BenchmarkRunner).Assembly.GetName().Version}";
    }
}
