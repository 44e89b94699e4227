import reef

ctx = reef.step()
print("picker:", ctx.params, flush=True)
