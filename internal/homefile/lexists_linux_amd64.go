package homefile

import "syscall"

const sysFstatat = syscall.SYS_NEWFSTATAT
