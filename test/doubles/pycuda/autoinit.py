"""pycuda.autoinit: creates a context on device 0, current on the importing thread only."""
import atexit

from . import driver

driver.init()
device = driver.Device(0)
context = device.make_context()
atexit.register(driver.Context.pop)
