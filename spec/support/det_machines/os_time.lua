-- apply calls os.time(): the sandbox turns it into a clear apply_error.
return {
  apply = function(cmd, meta)
    if cmd == "time" then return os.time() end
    return meta.time
  end,
}
