/* mpi_probe: each rank adds its rank+1 across MPI_COMM_WORLD and prints one line:
 *   rank=R size=N host=HOSTNAME sum=S expected=E
 * so a cluster test can check both the collective and where each rank ran. */
#include <mpi.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  long mine = rank + 1, sum = 0;
  MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
  char host[256] = "";
  gethostname(host, sizeof host - 1);
  printf("rank=%d size=%d host=%s sum=%ld expected=%ld\n", rank, size, host, sum,
         (long)size * (size + 1) / 2);
  MPI_Finalize();
  return sum == (long)size * (size + 1) / 2 ? 0 : 1;
}
