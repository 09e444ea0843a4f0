import sys

from stargan_keras.presets.command import main

if __name__ == "__main__":
    sys.exit(main())
