namespace PrunerZero.Cli;

/// <summary>Progress on stderr: rewritten in place on a terminal, at most one line a second otherwise.</summary>
public sealed class ProgressLine : IProgress<string>
{
    readonly bool _tty = !Console.IsErrorRedirected;
    readonly System.Diagnostics.Stopwatch _sw = System.Diagnostics.Stopwatch.StartNew();
    TimeSpan? _last;
    int _width;

    public void Report(string value)
    {
        if (_tty)
        {
            Console.Error.Write("\r" + value.PadRight(_width));
            _width = value.Length;
        }
        else if (_last is null || _sw.Elapsed - _last.Value >= TimeSpan.FromSeconds(1))
        {
            Console.Error.WriteLine(value);
            _last = _sw.Elapsed;
        }
    }

    /// <summary>Ends an in-place line so the next output starts clean.</summary>
    public void Done()
    {
        if (_tty && _width > 0) Console.Error.WriteLine();
        _width = 0;
    }
}
